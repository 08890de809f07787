"""`pipe train` across nodes: two torchrun "nodes" on this machine (gloo over loopback), each with one
process, read disjoint samples of the shards and take the same number of steps."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import make_sharded_dataset

SIZE = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_sharded_dataset(tmp_path_factory.mktemp("nodes") / "root", 24, SIZE, "--hints", "patches", "--val", "0", "--shard-samples", "6")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_train_on_disjoint_samples_with_equal_steps(dataset):
    port = free_port()
    train = ["train", "draft", str(dataset), "--recipe", "xu2020", "--steps", "4", "--batch-size", "2", "--size", str(SIZE), "--width", "0.25",
             "--workers", "0", "--log-every", "1", "--name", "nodes", "--record-keys", "--device", "cpu"]
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1",
             "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "pipeline.cli", *train],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(out[-3000:] for out in outputs)
    run = dataset / "runs" / "nodes"
    per_rank = []
    for rank in (0, 1):
        lines = (run / "keys" / f"rank{rank}.txt").read_text().splitlines()
        assert [int(line.split()[0]) for line in lines] == [1, 2, 3, 4]  # equal steps on both nodes
        per_rank.append({key for line in lines for key in line.split()[1:]})
    assert per_rank[0] and per_rank[1] and not per_rank[0] & per_rank[1]  # disjoint samples
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # rank 0 alone logs
    assert (run / "checkpoints" / "last.pt").is_file()
