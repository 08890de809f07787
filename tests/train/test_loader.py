"""The streaming loader: every sample once per epoch with 0 and 2 workers, rank splitting, resampled
epochs, float conversion on the device, and on-device re-synthesis."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from pipeline.cli import main
from tests.helpers import make_prepared_dataset
from train.loader import LoaderConfig, make_loader, shard_urls, to_device

COUNT = 30


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loader") / "root"
    make_prepared_dataset(root, COUNT, size=64)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--hints", "patches,palette", "--val", "0", "--shard-samples", "4", "--workers", "0"]) == 0
    return root / "shards" / "train"


def epoch_keys(config: LoaderConfig) -> list[str]:
    return [key for batch in make_loader(config) for key in batch["__key__"]]


@pytest.mark.parametrize("workers", [0, 2])
def test_one_epoch_delivers_every_sample_once_as_uint8_batches(shards, workers):
    config = LoaderConfig(shards=(str(shards),), batch_size=4, workers=workers, with_palette=True)
    keys, batches = [], list(make_loader(config))
    for batch in batches:
        keys += batch["__key__"]
        b = len(batch["__key__"])
        assert batch["color"].shape == (b, 3, 64, 64) and batch["color"].dtype == torch.uint8
        assert batch["line"].shape == (b, 1, 64, 64) and batch["hint"].shape == (b, 4, 64, 64)
        assert batch["draft"].shape == (b, 3, 64, 64) and batch["palette"].shape == (b, 4, 4, 3)
        assert [m["key"] for m in batch["meta"]] == batch["__key__"]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == COUNT


def test_shard_order_and_sample_order_are_shuffled(shards):
    ordered = epoch_keys(LoaderConfig(shards=(str(shards),), workers=0, shuffle_buffer=0, shuffle_shards=False))
    shuffled = epoch_keys(LoaderConfig(shards=(str(shards),), workers=0, shuffle_buffer=100, seed=1))
    assert sorted(ordered) == sorted(shuffled) and ordered != shuffled
    assert ordered == sorted(ordered), "pipe shard packs keys in order"


def test_ranks_read_disjoint_shards_that_together_cover_the_dataset(shards, monkeypatch):
    per_rank = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        per_rank.append(set(epoch_keys(LoaderConfig(shards=(str(shards),), workers=0, shuffle_shards=False))))
    assert per_rank[0] and per_rank[1] and not per_rank[0] & per_rank[1]
    assert len(per_rank[0] | per_rank[1]) == COUNT


def test_resampled_epochs_have_the_requested_length(shards):
    config = LoaderConfig(shards=(str(shards),), batch_size=4, workers=2, resampled=True, epoch_samples=40)
    loader = make_loader(config)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == 10 and all(len(b["__key__"]) == 4 for b in batches)
    with pytest.raises(ValueError, match="epoch_samples"):
        LoaderConfig(shards=(str(shards),), resampled=True)
    with pytest.raises(ValueError, match="not both"):
        LoaderConfig(shards=(str(shards),), resampled=True, repeat=True, epoch_samples=8)


def test_repeated_epochs_give_every_rank_equal_steps_on_disjoint_samples(shards, monkeypatch):
    seen, steps = [], []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        config = LoaderConfig(shards=(str(shards),), batch_size=4, workers=0, repeat=True, epoch_samples=48, shuffle_buffer=0)
        batches = list(make_loader(config))
        steps.append(len(batches))
        seen.append({key for batch in batches for key in batch["__key__"]})
    assert steps == [12, 12]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == COUNT


def test_to_device_gives_floats_in_0_1_and_a_12_channel_palette(shards):
    batch = next(iter(make_loader(LoaderConfig(shards=(str(shards),), batch_size=3, workers=0, with_palette=True))))
    moved = to_device(batch, "cpu")
    assert moved["color"].dtype == torch.float32 and torch.equal(moved["color"] * 255, batch["color"].float())
    assert moved["palette"].shape == (3, 12, 64, 64)
    assert torch.equal((moved["palette"][:, :3, 0, 0] * 255).round(), batch["palette"][:, 0, 0].float())


def test_shard_urls_take_folders_globs_and_braces_and_skip_unfinished(shards, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(shards, folder)
    (folder / "00042.tar").write_bytes(b"")  # no done-marker: a run in progress
    finished = shard_urls(str(folder))
    assert len(finished) == len(list(shards.glob("*.tar"))) and str(folder / "00042.tar") not in finished
    assert len(shard_urls(str(folder / "*.tar"))) == len(finished) + 1
    assert shard_urls(str(folder / "{00000..00001}.tar")) == [str(folder / "00000.tar"), str(folder / "00001.tar")]
    with pytest.raises(FileNotFoundError, match="pipe shard"):
        shard_urls(str(tmp_path / "empty*.tar"))





def test_unwanted_members_are_not_decoded(shards):
    config = LoaderConfig(shards=(str(shards),), batch_size=4, workers=0, images=("color", "line"))
    batch = next(iter(make_loader(config)))
    assert {"color", "line"} <= set(batch) and not {"hint", "draft", "palette"} & set(batch)
    with pytest.raises(ValueError, match="must include color"):
        LoaderConfig(shards=(str(shards),), images=("line",))


def test_a_repeated_stream_skips_to_a_resumed_position_exactly(shards):
    for workers in (0, 2):
        base = dict(shards=(str(shards),), batch_size=3, workers=workers, repeat=True, shuffle_buffer=8, seed=4)
        epochs = make_loader(LoaderConfig(**base, epoch_samples=15))
        whole = [b["__key__"] for _ in range(4) for b in epochs]  # 4 epochs of 5 batches, one stream
        assert len(whole) == 20 and len({tuple(k) for k in whole[:10]}) == 10
        assert whole[:10] != whole[10:20], "later epochs continue the stream rather than restart it"
        resumed = make_loader(LoaderConfig(**base, epoch_samples=9 * 3, skip_batches=11))
        assert [b["__key__"] for b in resumed] == whole[11:20]


def test_an_endless_stream_with_more_workers_than_shards_does_not_hang(shards, tmp_path):
    import shutil as _shutil

    folder = tmp_path / "one"
    folder.mkdir()
    for name in ("00000.tar", "00000_stats.json"):
        _shutil.copy(shards / name, folder / name)
    config = LoaderConfig(shards=(str(folder),), batch_size=2, workers=3, repeat=True, epoch_samples=12)
    batches = list(make_loader(config))
    assert len(batches) == 6
