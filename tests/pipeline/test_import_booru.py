"""`pipe import booru`: a dump of 2,000 posts gets the rows a crawl gives, resumes after SIGKILL,
and refuses bad input with one line."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawlers.config import CrawlConfig, Politeness
from crawlers.sites import resolve_site
from manifests.ledger import Ledger
from manifests.schema import RAW
from pipeline.cli import main
from pipeline.crawl.stage import run_crawl
from pipeline.demo.fixture_site import FixturePost, FixtureSite
from tests.pipeline.booru_dump import api_record, dump_posts, expected_rows, write_dump

REPO = Path(__file__).resolve().parents[2]


def ledger(root: Path) -> dict[int, dict]:
    rows = Ledger(root, RAW).read().to_pylist()
    assert len({row["post"] for row in rows}) == len(rows), "one row per post"
    return {row["post_id"]: row for row in rows}


def import_dump(source: Path, root: Path, metadata: Path, *extra: str) -> int:
    return main(["import", "booru", str(source), str(root), "--metadata", str(metadata), "--tags", "1girl", "--no-progress", *extra])


def test_every_post_of_a_2000_post_dump_gets_the_crawls_row(tmp_path, capsys):
    posts = dump_posts(2000)
    records = [api_record(post) for post in posts]
    records.insert(40, dict(records[3]))  # the dump repeats a post: still one row
    metadata = write_dump(tmp_path / "dump", posts, records)
    assert import_dump(tmp_path / "dump", tmp_path / "ds", metadata) == 0
    rows, expected = ledger(tmp_path / "ds"), expected_rows(posts)
    assert {post_id: (row["status"], row["reason"]) for post_id, row in rows.items()} == expected
    by_id = {post.id: post for post in posts}
    for post_id, row in rows.items():
        post = by_id[post_id]
        assert row["post"] == f"danbooru:{post_id}" and row["query"] == "1girl" and row["tags"] == f"1girl solo tag_{post_id % 7}"
        assert row["artist"] == f"artist_{post_id % 3}" and row["source"] == f"https://example.invalid/{post_id}"
        if row["status"] == "ok":
            key = hashlib.sha256(post.body).hexdigest()
            assert (row["key"], row["path"], row["bytes"]) == (key, f"raw/{key[:2]}/{key}.{post.ext}", len(post.body))
            assert (tmp_path / "ds" / row["path"]).read_bytes() == post.body
        elif row["reason"] == "duplicate":
            assert row["duplicate_of"] == f"danbooru:{post_id + 5}", "the first post with those bytes keeps them"
    stored = sorted(p.relative_to(tmp_path / "ds").as_posix() for p in (tmp_path / "ds" / "raw").rglob("*") if p.is_file())
    assert stored == sorted(row["path"] for row in rows.values() if row["status"] == "ok"), "no file without its ok row"
    said = " ".join(capsys.readouterr())
    assert "2,001 posts in the metadata" in said and "200 not matching --tags" in said


def test_rerun_skips_what_is_recorded_and_prepare_reads_the_ledger(tmp_path, capsys):
    posts = dump_posts(40)
    metadata = write_dump(tmp_path / "dump", posts)
    assert import_dump(tmp_path / "dump", tmp_path / "ds", metadata, "--link", "copy") == 0
    first = ledger(tmp_path / "ds")
    assert import_dump(tmp_path / "dump", tmp_path / "ds", metadata, "--link", "copy") == 0
    assert ledger(tmp_path / "ds") == first
    assert "40 posts in the metadata; 0 new rows" in " ".join(capsys.readouterr())
    assert main(["prepare", str(tmp_path / "ds" / "raw.parquet"), str(tmp_path / "ds"), "--min-side", "16", "--size", "16", "--workers", "0"]) == 0
    prepared = pq.read_table(tmp_path / "ds" / "prepared.parquet").to_pylist()
    ok_keys = {row["key"] for row in first.values() if row["status"] == "ok"}
    assert {row["key"] for row in prepared} == ok_keys


def test_flat_layout_by_md5_names_from_parquet_metadata_with_symlinks(tmp_path):
    posts = [post for post in dump_posts(20) if post.kind in ("ok", "png")]
    folder = tmp_path / "flat"
    folder.mkdir()
    for post in posts:
        (folder / f"{post.md5}.{post.ext}").write_bytes(post.body)
    metadata = tmp_path / "posts.parquet"
    pq.write_table(pa.Table.from_pylist([api_record(post) for post in posts]), metadata)
    assert import_dump(folder, tmp_path / "ds", metadata, "--layout", "flat", "--link", "symlink") == 0
    rows = ledger(tmp_path / "ds")
    assert [rows[post.id]["status"] for post in posts] == ["ok"] * len(posts)
    stored = tmp_path / "ds" / rows[posts[0].id]["path"]
    assert stored.is_symlink() and stored.read_bytes() == posts[0].body


@pytest.mark.parametrize(
    "case, said",
    [
        ("no_metadata_file", "error: metadata file not found"),
        ("unreadable", "is not JSON"),
        ("not_posts", "is not post metadata"),
        ("layout", "error: --layout must be one of: danbooru20xx, flat (got 'nested')"),
        ("link", "error: --link must be one of"),
        ("metatag", "not metatags like 'rating:g'"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, capsys, case, said):
    dump = tmp_path / "dump"
    metadata = write_dump(dump, dump_posts(3))
    args = {"layout": ["--layout", "nested"], "link": ["--link", "reflinkish"], "metatag": ["--tags", "rating:g"]}.get(case, [])
    if case == "no_metadata_file":
        metadata = tmp_path / "absent.jsonl"
    elif case == "unreadable":
        metadata.write_text('{"id": 1}\n{"id": 2, oops\n')
    elif case == "not_posts":
        metadata = tmp_path / "notes.txt"
        metadata.write_text("hello")
    code = main(["import", "booru", str(dump), str(tmp_path / "ds"), "--metadata", str(metadata), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and said in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_sigkill_mid_import_then_rerun_gives_the_uninterrupted_ledger(tmp_path):
    posts = dump_posts(2000)
    metadata = write_dump(tmp_path / "dump", posts)
    assert import_dump(tmp_path / "dump", tmp_path / "clean", metadata) == 0
    command = [sys.executable, "-m", "pipeline.cli", "import", "booru", str(tmp_path / "dump"), str(tmp_path / "killed"),
               "--metadata", str(metadata), "--tags", "1girl", "--no-progress", "--save-every", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "killed" / ".pipe" / "parts" / "raw"
    deadline = time.monotonic() + 60
    while not (parts.is_dir() and any(parts.glob("part-*.parquet"))) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "killed mid-import, not finished"
    partial = len(Ledger(tmp_path / "killed", RAW).read())
    assert 0 < partial < len(expected_rows(posts))
    assert import_dump(tmp_path / "dump", tmp_path / "killed", metadata) == 0
    assert ledger(tmp_path / "killed") == ledger(tmp_path / "clean")
    files = lambda root: sorted(p.relative_to(root).as_posix() for p in (root / "raw").rglob("*") if p.is_file())  # noqa: E731
    assert files(tmp_path / "killed") == files(tmp_path / "clean")


def fixture_board_posts(count: int) -> list[FixturePost]:
    """The dump's posts as the crawler tests' fixture board serves them (its faults named its way)."""
    faults = {"missing": "http_404", "wrong_md5": "wrong_md5"}
    board = []
    for post in dump_posts(count):
        record = api_record(post)
        board.append(FixturePost(
            id=post.id, body=post.body, ext=post.ext, width=record["image_width"], height=record["image_height"],
            rating=record["rating"], tags=record["tag_string"], artist=record["tag_string_artist"], source=record["source"],
            fault=faults.get(post.kind),
        ))
    return board


def test_importing_the_boards_posts_gives_the_rows_crawling_them_gives(tmp_path):
    board_posts = fixture_board_posts(100)
    fast = Politeness(request_interval=0.05, backoff_base=0.1, autothrottle=False, connections_per_host=8, retries=0)
    with FixtureSite("danbooru", board_posts) as site:
        config = CrawlConfig(site=resolve_site("danbooru", site.root), root=tmp_path / "crawled", tags="1girl", politeness=fast, progress=False)
        assert run_crawl(config).error is None
        records = [site.record(post) for post in site.posts]  # the board's own API records, in its order
    dump = [post for post in dump_posts(100)]
    metadata = write_dump(tmp_path / "dump", dump)
    metadata.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert import_dump(tmp_path / "dump", tmp_path / "imported", metadata) == 0
    crawled, imported = ledger(tmp_path / "crawled"), ledger(tmp_path / "imported")
    assert set(crawled) == set(imported) and len(imported) == 90
    for post_id, row in crawled.items():
        mine = imported[post_id]
        if row["reason"] == "http_404":  # the board's missing file is the dump's
            assert (mine["status"], mine["reason"]) == ("rejected", "missing_file")
            continue
        detail_matters = row["reason"] not in ("duplicate",)  # a duplicate's says whether the first was still downloading
        for column in RAW.arrow.names:
            if column != "detail" or detail_matters:
                assert mine[column] == row[column], f"post {post_id} {column}: crawl {row[column]!r}, import {mine[column]!r}"


def test_old_rating_letters_record_safe_as_general(tmp_path):
    posts = [post for post in dump_posts(10) if post.kind == "ok"]
    records = [{**api_record(post), "rating": rating} for post, rating in zip(posts, ("s", "q"))]
    metadata = write_dump(tmp_path / "dump", posts, records)
    assert import_dump(tmp_path / "dump", tmp_path / "ds", metadata, "--old-ratings") == 0
    rows = ledger(tmp_path / "ds")
    assert [(rows[p.id]["rating"], rows[p.id]["status"], rows[p.id]["reason"]) for p in posts] == [("g", "ok", None), ("q", "rejected", "rating_filtered")]
    assert import_dump(tmp_path / "dump", tmp_path / "current", metadata) == 0
    assert ledger(tmp_path / "current")[posts[0].id]["rating"] == "s", "today's letters by default"


def test_a_second_import_while_one_runs_is_refused_with_one_line(tmp_path, capsys):
    import fcntl

    from manifests.layout import DatasetLayout

    metadata = write_dump(tmp_path / "dump", dump_posts(5))
    lock = DatasetLayout(tmp_path / "ds").lock("raw")
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running crawl or import holds
        assert import_dump(tmp_path / "dump", tmp_path / "ds", metadata) == 2
    err = capsys.readouterr().err
    assert "another run of stage 'raw'" in err and len(err.strip().splitlines()) == 1
    assert not Ledger(tmp_path / "ds", RAW).exists()


def test_a_json_array_in_the_2019_dumps_schema_with_string_ids_and_tag_lists(tmp_path):
    post = next(post for post in dump_posts(3) if post.kind == "ok")
    record = {**api_record(post), "id": str(post.id), "image_width": "600", "image_height": "608"}
    for field in ("tag_string", "tag_string_artist", "tag_string_character"):
        del record[field]
    record["tags"] = [{"id": "1", "name": "1girl", "category": "0"}, {"id": "2", "name": "solo", "category": "0"},
                      {"id": "3", "name": "some_artist", "category": "1"}, {"id": "4", "name": "hatsune_miku", "category": "4"}]
    write_dump(tmp_path / "dump", [post])
    metadata = tmp_path / "posts.json"
    metadata.write_text(json.dumps([record]))
    assert import_dump(tmp_path / "dump", tmp_path / "ds", metadata) == 0
    row = ledger(tmp_path / "ds")[post.id]
    assert (row["status"], row["width"], row["tags"], row["artist"], row["characters"]) == ("ok", 600, "1girl solo some_artist hatsune_miku", "some_artist", "hatsune_miku")


def write_import_job(folder: Path, board: str, source: str = "dump", metadata: str = "dump/metadata/posts.json", extra: str = "") -> Path:
    """`dataset = "ds"`, a dump imported (paths relative to the job file), the board crawled, both prepared."""
    job = folder / "job.toml"
    job.write_text(
        f'dataset = "ds"\n[import]\nsource = "{source}"\nmetadata = "{metadata}"\ntags = "1girl"\n{extra}'
        f'[crawl]\nsite = "danbooru"\nroot = "{board}"\ntags = "1girl"\ninterval = 0.0\nbackoff = 0.1\nautothrottle = false\n'
        '[prepare]\nmin-side = 16\nsize = 16\nworkers = 0\n'
    )
    return job


def test_a_job_imports_the_dump_then_crawls_only_the_posts_the_dump_lacks(tmp_path, capsys):
    board_posts = fixture_board_posts(100)
    older = [post for post in dump_posts(100) if post.id <= 9950]  # the dump was taken before the newest 50 posts
    with FixtureSite("danbooru", board_posts) as site:
        metadata = write_dump(tmp_path / "dump", older)
        metadata.write_text("".join(json.dumps(site.record(post)) + "\n" for post in site.posts if post.id <= 9950))
        job = write_import_job(tmp_path, site.root)
        capsys.readouterr()
        assert main(["run", str(job), "--dry-run"]) == 0
        planned = " ".join(capsys.readouterr())
        assert "imports the posts of" in planned and "pipe import booru" in planned
        assert main(["run", str(job)]) == 0
        fetched = {site._files[r.path].id for r in site.requests if not r.is_api and r.path in site._files}
        said = capsys.readouterr()
        assert main(["run", str(job)]) == 0, "a second run: nothing new anywhere"
        assert "job: nothing to do" in " ".join(capsys.readouterr())
    rows = ledger(tmp_path / "ds")
    assert fetched and all(post_id > 9950 for post_id in fetched), "the crawl downloads no post the dump holds"
    imported = {post_id: row for post_id, row in rows.items() if post_id <= 9950}
    assert {post_id: (row["status"], row["reason"]) for post_id, row in imported.items()} == expected_rows(older)
    assert all(row["query"] == "1girl" for row in rows.values()) and len(rows) == 90  # every post of the query, once
    assert "import: done" in said.out + said.err and "crawl: done" in said.out + said.err
    prepared = pq.read_table(tmp_path / "ds" / "prepared.parquet").to_pylist()
    assert {row["key"] for row in prepared} == {row["key"] for row in rows.values() if row["status"] == "ok"}


@pytest.mark.parametrize(
    "values, said",
    [
        ({"extra": 'layout = "nested"\n'}, "[import] layout: --layout must be one of: danbooru20xx, flat (got 'nested')"),
        ({"extra": 'rating = "g,x"\n'}, "[import] rating: --rating takes letters"),
        ({"metadata": "absent.jsonl"}, "[import] metadata: metadata file not found"),
        ({"source": "nowhere"}, "[import] source: dump folder not found"),
    ],
)
def test_a_job_with_a_wrong_import_value_is_one_line_before_anything_runs(tmp_path, capsys, values, said):
    write_dump(tmp_path / "dump", dump_posts(5))
    job = write_import_job(tmp_path, "http://127.0.0.1:9", **values)
    capsys.readouterr()
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "ds").exists(), "nothing written"
