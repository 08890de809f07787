"""`pipe run JOB.toml`: the chain as one scheduled job against the fixture board.

What a nightly job must do: run crawl -> report, do nothing when nothing changed, process exactly the
new posts when the board grows, survive kill -9 in any stage without loss or duplicates, refuse a
second concurrent run with exit 3, and refuse a bad job file with one line naming the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from manifests.layout import DatasetLayout
from pipeline.cli import main
from pipeline.demo.fixture_site import FixtureSite, generated_post

LEDGERS = ("raw", "prepared", "lines", "shards")


def board_posts(first_id: int, count: int, seed: int) -> list:
    return [generated_post(first_id + i, seed + i, width=600, height=560, tags="1girl solo") for i in range(count)]


def write_job(folder: Path, board: str, dataset: str = "dataset", steps: int = 2, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.toml"
    job.write_text(
        f"""
dataset = "{dataset}"
seed = 1
[crawl]
site = "danbooru"
root = "{board}"
tags = "1girl solo"
interval = 0.0
backoff = 0.1
autothrottle = false
[prepare]
workers = 0
save-every = 0
[extract]
method = "xdog,dilate"
device = "cpu"
workers = 0
save-every = 0
[shard]
hints = "points"
artifacts = "none"
val = 0.34
shard-samples = 3
workers = 0
save-every = 0
[train.draft]
recipe = "xu2020"
steps = {steps}
size = 64
width = 0.125
batch-size = 2
content-loss = false
device = "cpu"
workers = 0
[eval]
hints = "none"
device = "cpu"
workers = 0
{extra}"""
    )
    return job


def ledger_bytes(root: Path) -> dict[str, bytes]:
    return {name: (root / f"{name}.parquet").read_bytes() for name in LEDGERS}


def shard_digests(root: Path) -> dict[str, str]:
    shards = DatasetLayout(root).shards
    return {str(p.relative_to(shards)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(shards.rglob("*.tar"))}


def rows(root: Path, name: str) -> list[dict]:
    return pq.read_table(root / f"{name}.parquet").to_pylist()


def comparable(root: Path) -> dict[str, object]:
    """Each ledger's rows as sets of what they say (not where the dataset lives), to compare two datasets."""
    return {
        "raw": sorted((r["post"], r["status"], r["reason"], r["key"]) for r in rows(root, "raw")),
        "prepared": sorted((r["key"], r["status"], r["reason"]) for r in rows(root, "prepared")),
        "lines": sorted((r["line"], r["status"]) for r in rows(root, "lines")),
        "shards": sorted((r["key"], r["status"], r["shard"]) for r in rows(root, "shards")),
        "tars": shard_digests(root),
    }


def checkpoint_step(root: Path, run: str) -> int:
    """The step the run's last training session ended at (its summary; the checkpoint is saved then)."""
    assert DatasetLayout(root).run_checkpoint(run).is_file()
    return json.loads(DatasetLayout(root).summary(f"train-{run}").read_text())["last_step"]


@pytest.fixture(autouse=True)
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPE_WEIGHTS", str(tmp_path / "no-weights"))


# ----------------------------------------------------------------------------------------- bad job files
@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda t: t.replace("tags = ", "tagz = "), ["[crawl]", "tagz"]),
        (lambda t: t + "[crawll]\nx = 1\n", ["crawll"]),
        (lambda t: t + "[train.drafts]\nsteps = 1\n", ["train.drafts"]),
        (lambda t: t.replace("shard-samples = 3", "shard-samples = \"many\""), ["[shard]", "shard-samples"]),
        (lambda t: t.replace("autothrottle = false", "autothrottle = \"no\""), ["[crawl]", "autothrottle"]),
        (lambda t: t.replace("steps = 2", "steps = 0"), ["[train.draft]", "steps"]),
        (lambda t: t.replace('dataset = "dataset"', ""), ["dataset"]),
        (lambda t: t.replace("[prepare]", "[prepare]\nroot = \"elsewhere\""), ["[prepare]", "root"]),
        (lambda t: t.replace("[train.draft]", "[train.draft]\nresume = true"), ["[train.draft]", "resume"]),
        (lambda t: t.replace("hints = \"none\"", "hints = \"none\"\nrefine = \"train.refine\""), ["[eval]", "refine"]),
    ],
)
def test_a_bad_job_file_is_one_line_naming_the_key_and_runs_nothing(tmp_path, capsys, edit, names):
    job = write_job(tmp_path, "http://127.0.0.1:1")
    job.write_text(edit(job.read_text()))
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for name in names:
        assert name in err
    assert not (tmp_path / "dataset").exists()


def test_bad_selection_and_overrides_are_one_line(tmp_path, capsys):
    job = write_job(tmp_path, "http://127.0.0.1:1")
    for argv in (["--only", "colorize"], ["--from", "eval", "--until", "crawl"], ["--set", "shard.hints"], ["--set", "crawl.limit=lots"]):
        assert main(["run", str(job), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "no such job file" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    posts = board_posts(100, 3, seed=5)
    job = write_job(tmp_path, "http://127.0.0.1:1", extra="")
    assert main(["run", str(job), "--dry-run", "--set", "train.draft.steps=7"]) == 0
    plan = " ".join(capsys.readouterr().err.split())
    assert "trains to step 7" in plan and "--steps 7" in plan
    assert not (tmp_path / "dataset").exists()
    del posts


# ----------------------------------------------------------------------------------------- the chain
@pytest.mark.slow
def test_the_job_runs_the_chain_does_nothing_again_and_then_exactly_the_new_posts(tmp_path, capsys):
    with FixtureSite("danbooru", board_posts(200, 6, seed=10)) as site:
        job = write_job(tmp_path, site.root, steps=2)
        root = tmp_path / "dataset"
        assert main(["run", str(job)]) == 0
        assert (root / "runs" / "xu2020-draft" / "checkpoints" / "last.pt").is_file()
        first_reports = sorted(p.name for p in (root / "reports").iterdir() if p.name != ".cache")
        assert len(first_reports) == 1 and (root / "reports" / first_reports[0] / "report.html").is_file()
        assert checkpoint_step(root, "xu2020-draft") == 2
        before, tars = ledger_bytes(root), shard_digests(root)
        capsys.readouterr()

        # Nothing changed: nothing is done, and it says so.
        assert main(["run", str(job)]) == 0
        err = capsys.readouterr().err
        assert "job: nothing to do" in err
        assert ledger_bytes(root) == before and shard_digests(root) == tars
        assert sorted(p.name for p in (root / "reports").iterdir() if p.name != ".cache") == first_reports

        # The board grows by 4 posts: exactly those go through every stage.
        site.add_posts(board_posts(300, 4, seed=50))
        assert main(["run", str(job)]) == 0
        raw = rows(root, "raw")
        assert len(raw) == 10 and {r["post"] for r in raw} >= {f"danbooru:{i}" for i in range(300, 304)}
        new_keys = {r["key"] for r in raw if r["post"] >= "danbooru:300"}
        prepared = rows(root, "prepared")
        assert len(prepared) == 10 and {r["key"] for r in prepared if r["status"] == "ok"} >= new_keys
        assert len(rows(root, "lines")) == 20
        shards = rows(root, "shards")
        assert len(shards) == 10 and all(r["status"] == "ok" for r in shards)
        after = shard_digests(root)
        assert all(after[name] == digest for name, digest in tars.items())  # old shards untouched
        added = set(after) - set(tars)
        assert added  # the new samples are in new shards only
        new_shard_keys = {r["key"] for r in shards if f"{r['shard']}.tar" not in tars}
        assert new_shard_keys == new_keys
        assert checkpoint_step(root, "xu2020-draft") == 4  # trained on for the job's 2 steps
        reports = sorted(p.name for p in (root / "reports").iterdir() if p.name != ".cache")
        assert len(reports) == 2 and first_reports[0] in reports  # a new report, the old one kept
        # Each run left its record: the job as it ran, a log, a summary of what each stage did.
        records = sorted((root / "jobs").iterdir())
        assert len(records) == 3
        summary = json.loads((records[-1] / "summary.json").read_text())
        assert summary["exit_code"] == 0
        by_stage = {s["name"]: s for s in summary["stages"]}
        assert by_stage["prepare"]["summary"]["processed"] == 4
        assert "steps 3-4" in by_stage["train.draft"]["detail"]
        assert (records[-1] / "job.toml").read_text().startswith("dataset = ")
        assert "train.draft: start" in (records[-1] / "job.log").read_text()
        capsys.readouterr()
        assert main(["status", str(root)]) == 0
        status = capsys.readouterr().err
        assert "job runs" in status and "train.draft done" in status and "train.draft nothing to do" in status


def test_a_failed_stage_gives_exit_1_and_the_stages_that_need_it_are_skipped(tmp_path, capsys):
    # Nothing listens on port 1: the crawl fails; prepare, extract, shard, train and eval depend on it.
    job = write_job(tmp_path, "http://127.0.0.1:1")
    job.write_text(job.read_text().replace("backoff = 0.1", "backoff = 0.1\nretries = 0"))
    assert main(["run", str(job)]) == 1
    err = capsys.readouterr().err
    assert "crawl: failed" in err and "prepare: skipped: crawl failed" in err
    (record,) = (tmp_path / "dataset" / "jobs").iterdir()
    summary = json.loads((record / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["failed"] + ["skipped"] * 5
    assert summary["exit_code"] == 1


# ----------------------------------------------------------------------------------------- kill -9
def start_job(job: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", str(job)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def job_records(root: Path) -> set[Path]:
    return set((root / "jobs").glob("*/summary.json")) if (root / "jobs").is_dir() else set()


def wait_for_stage(process: subprocess.Popen, root: Path, stage: str, earlier: set[Path]) -> None:
    """Until the job started after `earlier` records says it is running `stage`."""
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, f"the job ended before {stage}: {process.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"never reached {stage}"
        for record in job_records(root) - earlier:
            try:
                if json.loads(record.read_text()).get("running") == stage:
                    return
            except ValueError:
                pass
        time.sleep(0.05)


PARTS = {"crawl": "raw", "prepare": "prepared", "extract": "lines", "shard": "shards"}


def running_now(root: Path, earlier: set[Path]) -> str | None:
    for record in job_records(root) - earlier:
        try:
            return json.loads(record.read_text()).get("running")
        except ValueError:
            return None
    return None


def wait_for_progress(process: subprocess.Popen, root: Path, stage: str, timeout: float, earlier: set[Path]) -> bool:
    """Wait until `stage` has saved some but not all of its work (a ledger part on disk), for at most
    `timeout` s or until the stage is over; True when the kill will land in the middle of the stage."""
    deadline = time.monotonic() + timeout
    parts = root / ".pipe" / "parts" / PARTS.get(stage, "-")
    while time.monotonic() < deadline and process.poll() is None:
        if stage in PARTS and any(parts.glob("*.parquet")):
            return True
        if running_now(root, earlier) not in (stage, None):
            return False  # the stage finished before anything could be seen
        time.sleep(0.01)
    return stage not in PARTS and process.poll() is None


@pytest.mark.slow
def test_kill_9_in_each_stage_then_a_rerun_ends_as_an_uninterrupted_run_and_a_second_run_exits_3(tmp_path, capsys):
    posts = board_posts(400, 7, seed=70)
    with FixtureSite("danbooru", posts, file_delay=0.3) as site:
        reference = write_job(tmp_path / "reference", site.root)
        assert main(["run", str(reference)]) == 0
        expected = comparable(tmp_path / "reference" / "dataset")

        job = write_job(tmp_path / "killed", site.root)
        root = tmp_path / "killed" / "dataset"
        # kill -9 in every stage in turn, each run resuming what the killed one left.
        mid_stage: dict[str, bool] = {}
        for stage, timeout in (("crawl", 10), ("prepare", 10), ("extract", 10), ("shard", 10), ("train.draft", 0.3), ("eval", 0.3)):
            earlier = job_records(root)
            process = start_job(job)
            wait_for_stage(process, root, stage, earlier)
            if stage == "crawl":  # while one run holds the dataset, a second one exits 3 and does nothing
                capsys.readouterr()
                assert main(["run", str(job)]) == 3
                assert "holds" in capsys.readouterr().err
            mid_stage[stage] = wait_for_progress(process, root, stage, timeout, earlier)
            process.send_signal(signal.SIGKILL)
            process.wait()
            process.stderr.close()
        # The crawl (slow files) surely died halfway; most others did too, once their first rows were saved.
        assert mid_stage["crawl"] and sum(mid_stage.values()) >= 3
        assert main(["run", str(job)]) == 0
        assert comparable(root) == expected
        for name in LEDGERS:  # no duplicates: one row per input
            table = rows(root, name)
            ids = [r[{"raw": "post", "prepared": "source", "lines": "line", "shards": "key"}[name]] for r in table]
            assert len(ids) == len(set(ids))
        assert checkpoint_step(root, "xu2020-draft") == 2
        assert not list(root.rglob("*.tmp")) and not any((root / ".pipe" / "tmp").rglob("*.*"))
        assert list((root / "reports").glob("*/report.json"))


@pytest.mark.slow
def test_sigterm_ends_the_job_like_ctrl_c_and_the_next_run_finishes_it(tmp_path):
    with FixtureSite("danbooru", board_posts(500, 5, seed=90)) as site:
        job = write_job(tmp_path, site.root, steps=150)  # long enough to be stopped halfway
        root = tmp_path / "dataset"
        process = start_job(job)
        wait_for_stage(process, root, "train.draft", set())
        time.sleep(1.0)  # a systemd stop while the model trains
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        err = process.stderr.read()
        assert code == 2, err[-3000:]
        last = err.strip().splitlines()[-1]
        process.stderr.close()
        assert "interrupted" in last and "Traceback" not in last
        (record,) = (root / "jobs").glob("*/summary.json")
        summary = json.loads(record.read_text())
        assert summary["exit_code"] == 2 and summary["stages"][-1] == {**summary["stages"][-1], "name": "train.draft", "status": "interrupted"}
        assert main(["run", str(job)]) == 0
        assert checkpoint_step(root, "xu2020-draft") == 150  # resumed to the same target
        ok = [r for r in rows(root, "prepared") if r["status"] == "ok"]
        assert len(rows(root, "lines")) == 2 * len(ok) and len(rows(root, "shards")) == len(ok)
