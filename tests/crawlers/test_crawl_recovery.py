"""A crawl that stops between "files on disk" and "ledger saved" (kill -9, a full disk) and is run
again ends with the ledger an uninterrupted crawl writes: files kept from the stopped run are owned
by one post, and the posts with the same bytes are its duplicates."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crawlers.config import CrawlConfig, Politeness
from crawlers.sites import resolve_site
from manifests.ledger import Ledger
from manifests.schema import RAW
from pipeline.cli import main
from pipeline.crawl.stage import run_crawl
from pipeline.demo.fixture_site import FixturePost, FixtureSite, generated_post

FAST = Politeness(request_interval=0.0, backoff_base=0.1, autothrottle=False)
# What a ledger row says about the post that does not depend on timing (`detail` does: "downloading
# in this run" or "already downloaded", "kept from an interrupted run").
COLUMNS = ("post", "status", "reason", "key", "path", "md5", "bytes", "duplicate_of", "file_url", "post_id")


def catalogue(board_root: str = "") -> list[FixturePost]:
    """12 distinct files, then re-uploads of some of them listed later: duplicates by md5."""
    posts = [generated_post(1000 - i, 300 + i, width=600, height=560) for i in range(12)]
    for offset, original in enumerate((0, 1, 4, 9)):
        first = posts[original]
        posts.append(FixturePost(id=900 - offset, body=first.body, ext=first.ext, width=first.width, height=first.height, tags="1girl solo reupload"))
    return posts


def comparable(root: Path) -> set[tuple]:
    return {tuple(row[c] for c in COLUMNS) for row in Ledger(root, RAW).read().to_pylist()}


def files_on_disk(root: Path) -> list[Path]:
    return sorted(p for p in (root / "raw").rglob("*") if p.is_file()) if (root / "raw").is_dir() else []


def crawl(site: FixtureSite, root: Path) -> None:
    config = CrawlConfig(site=resolve_site("danbooru", site.root), root=root, tags="1girl solo", politeness=FAST, progress=False)
    assert run_crawl(config).error is None


def test_a_kept_file_goes_to_its_first_post_and_the_reupload_stays_a_duplicate(tmp_path):
    posts = catalogue()
    with FixtureSite("danbooru", posts) as site:
        crawl(site, tmp_path / "reference")
        expected = comparable(tmp_path / "reference")
        # What a run killed after its first files and before its first ledger save leaves: files, no ledger.
        for path in files_on_disk(tmp_path / "reference")[:6]:
            target = tmp_path / "killed" / path.relative_to(tmp_path / "reference")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        crawl(site, tmp_path / "killed")
    assert comparable(tmp_path / "killed") == expected
    reuploads = {row[0]: row for row in comparable(tmp_path / "killed") if row[0] in {f"danbooru:{900 - i}" for i in range(4)}}
    assert {row[1:3] for row in reuploads.values()} == {("rejected", "duplicate")}


@pytest.fixture
def small_disk(tmp_path):
    """A 200 KiB tmpfs (a few files fit); yields (mount point, grow) where grow() frees space."""
    point = tmp_path / "disk"
    point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(point)], capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield point, lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(point)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


ENOSPC_LINE = re.compile(r"error: no space left on device writing (\S+): (\d+) rows saved; free space and run the same command again")


def test_a_full_disk_is_one_line_and_the_rerun_after_freeing_space_ends_as_an_uninterrupted_run(tmp_path, small_disk, capfd):
    point, grow = small_disk
    root = point / "dataset"
    with FixtureSite("danbooru", catalogue()) as site:
        crawl(site, tmp_path / "reference")
        argv = ["crawl", "danbooru", str(root), "--tags", "1girl solo", "--root", site.root, "--interval", "0", "--no-autothrottle", "--no-progress"]
        capfd.readouterr()
        assert main(argv) == 2
        lines = capfd.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and ENOSPC_LINE.fullmatch(lines[0]), lines
        path, saved = ENOSPC_LINE.fullmatch(lines[0]).groups()
        assert Path(path).is_relative_to(root) and int(saved) == len(Ledger(root, RAW).read())
        assert 0 < len(files_on_disk(root)) < 12, "the disk filled partway"
        grow()
        assert main(argv) == 0
    assert comparable(root) == comparable(tmp_path / "reference")
    assert len(files_on_disk(root)) == 12 and not list(root.rglob("*.tmp"))


def write_job(folder: Path, board: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.toml"
    job.write_text(
        f'dataset = "dataset"\nseed = 1\n[crawl]\nsite = "danbooru"\nroot = "{board}"\ntags = "1girl solo"\n'
        "interval = 0.0\nbackoff = 0.1\nautothrottle = false\nprogress = false\n"
    )
    return job


@pytest.mark.slow
def test_kill_9_of_the_job_after_each_of_the_first_10_files_then_a_rerun_ends_as_an_uninterrupted_run(tmp_path):
    with FixtureSite("danbooru", catalogue()) as site:
        assert main(["run", str(write_job(tmp_path / "reference", site.root))]) == 0
        expected = comparable(tmp_path / "reference" / "dataset")
        before_first_save = 0
        for k in range(1, 11):
            job = write_job(tmp_path / f"killed-{k}", site.root)
            root = job.parent / "dataset"
            # The crawl's child kills the whole job (its process group) once the k-th file is stored.
            env = {**os.environ, "PIPE_TEST_KILL_AFTER_FILES": str(k)}
            process = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(job)], env=env, start_new_session=True, capture_output=True, timeout=120)
            assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
            assert len(files_on_disk(root)) >= k
            before_first_save += not Ledger(root, RAW).exists()
            assert main(["run", str(job)]) == 0
            assert comparable(root) == expected, f"killed after file {k}"
            assert len(files_on_disk(root)) == 12
    assert before_first_save >= 8, "the kills landed before the first ledger save"
