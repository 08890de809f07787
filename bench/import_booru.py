"""`pipe import booru` on a generated million-post dump: peak memory (RSS) and posts per second.

    python bench/import_booru.py [--rows 1000000] [--files 2000] [--format jsonl|parquet] [--keep DIR]

Writes metadata of the Danbooru API's schema (every field a Danbooru20xx record has that pipe reads,
plus a few it ignores) for `--rows` posts, with files for only the first `--files` (the rest are
`missing_file` rows, the common case of a partial download of a dump), then runs the import in a child
process and reports the child's peak RSS (getrusage) and rows per second, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.pipeline.booru_dump import DumpPost, api_record, dump_posts  # noqa: E402

CHUNK = 50_000


def records(rows: int, files: int) -> tuple[list[DumpPost], object]:
    """The posts with files (real bytes) and a generator of every record, in chunks of CHUNK."""
    with_files = dump_posts(min(files, rows), first_id=rows + 10)

    def chunks():
        for start in range(0, rows, CHUNK):
            chunk = []
            for index in range(start, min(rows, start + CHUNK)):
                if index < len(with_files):
                    chunk.append(api_record(with_files[index]))
                else:
                    post = DumpPost(rows + 10 - index, "ok", index.to_bytes(8, "little"), "jpg")
                    chunk.append(api_record(post))
            yield chunk

    return with_files, chunks()


def write_metadata(folder: Path, rows: int, files: int, kind: str) -> Path:
    with_files, chunks = records(rows, files)
    for post in with_files:
        if post.kind != "missing":
            directory = folder / "original" / f"{post.id % 1000:04d}"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{post.id}.{post.ext}").write_bytes(post.body)
    path = folder / ("posts.parquet" if kind == "parquet" else "posts.json")
    if kind == "parquet":
        writer = None
        for chunk in chunks:
            table = pa.Table.from_pylist(chunk)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        writer.close()
    else:
        with open(path, "w") as handle:
            for chunk in chunks:
                handle.write("".join(json.dumps(record) + "\n" for record in chunk))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    parser.add_argument("--keep", type=Path, help="write the dump and dataset here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="pipe-bench-import-"))
    try:
        started = time.perf_counter()
        metadata = write_metadata(work / "dump", args.rows, args.files, args.format)
        generated = time.perf_counter() - started
        command = [sys.executable, "-m", "pipeline.cli", "import", "booru", str(work / "dump"), str(work / "ds"),
                   "--metadata", str(metadata), "--tags", "1girl", "--no-progress"]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
        seconds = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
        print(json.dumps({
            "rows": args.rows, "files": args.files, "format": args.format, "metadata_mib": round(metadata.stat().st_size / 2**20, 1),
            "generate_s": round(generated, 1), "import_s": round(seconds, 1), "rows_per_s": round(args.rows / seconds),
            "peak_rss_mib": round(peak_mib, 1),
        }))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
