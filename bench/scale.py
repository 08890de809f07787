"""How pipe's nightly no-op grows with the dataset: `pipe run` with nothing new, `pipe prepare` and
`pipe status` over synthetic datasets of N inputs, with the growth exponent fitted from the sizes.

    python bench/scale.py [--sizes 10000,100000] [--max-n 1000000] [--keep DIR]

The datasets are the demo's (`pipe demo`, run once) with their crawl, prepared and line-art ledgers
grown to N posts: the demo's own rows of the real schema, repeated with new posts, keys, paths and
perceptual hashes, written as checksummed ledgers. No image is copied: a no-op stage reads ledgers
only, which is what this measures. Each command runs as a user's would, in its own process;
wall time and peak RSS come from that process (`resource.getrusage` of the child).

It prints one row per N and command and, for each command, the exponent b of time ~ N^b and
memory ~ N^b between the two largest sizes, against the scale issue's targets: a no-op `pipe run` under 30 s
at 5M (extrapolated from the fit where 5M is not measured) and peak RSS under 2 GB. Absolute seconds
belong to the machine they were taken on; read the growth.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifests.checksummed import checksummed_parquet  # noqa: E402
from manifests.ledger import SORTED_KEY, SORTED_VALUE, Ledger  # noqa: E402
from manifests.schema import LINES, PREPARED, RAW, STATUS_OK  # noqa: E402

TARGET_NOOP_S_AT_5M = 30.0
TARGET_PEAK_GB = 2.0


def build_base(folder: Path) -> Path:
    """The demo's dataset and job, built once: `pipe demo FOLDER`."""
    if not (folder / "job.toml").is_file():
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"error: `pipe demo {folder}` failed: {done.stderr.strip()[-2000:]}")
    return folder


def _ok_rows(root: Path, schema) -> pa.Table:
    table = Ledger(root, schema).read()
    return table.filter(pa.compute.equal(table["status"], STATUS_OK))


def _keys(count: int) -> list[str]:
    return [hashlib.sha256(f"scale-{i}".encode()).hexdigest() for i in range(count)]


def grow(base: Path, target: Path, count: int, seed: int = 0) -> Path:
    """A copy of the demo's dataset whose raw, prepared and lines ledgers hold `count` ok posts."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(base, target, symlinks=True)
    root = target / "dataset"
    shutil.rmtree(root / ".pipe" / "memos", ignore_errors=True)  # the demo's: made from other ledgers
    raw, prepared, lines = (_ok_rows(root, schema) for schema in (RAW, PREPARED, LINES))
    keys = _keys(count)
    posts = [f"danbooru:{10_000_000 + i}" for i in range(count)]
    pick = np.arange(count) % raw.num_rows
    raw = raw.take(pa.array(pick))
    raw = _replace(raw, post=posts, post_id=[10_000_000 + i for i in range(count)], key=keys, md5=[k[:32] for k in keys],
                   path=[f"raw/{k[:2]}/{k}.png" for k in keys])
    rng = np.random.default_rng(seed)
    prepared = prepared.take(pa.array(np.arange(count) % prepared.num_rows))
    prepared = _replace(prepared, source=posts, key=keys, path=[f"prepared/{k[:2]}/{k}.png" for k in keys],
                        phash=[f"{int(h):016x}" for h in rng.integers(0, 2**63, count, dtype=np.uint64)])
    methods = sorted(set(lines["method"].to_pylist()))
    per_method = {m: lines.filter(pa.compute.equal(lines["method"], m)).slice(0, 1) for m in methods}
    blocks = []
    for method, row in per_method.items():
        block = row.take(pa.array(np.zeros(count, dtype=np.int64)))
        blocks.append(_replace(block, key=keys, line=[f"{method}/{k}" for k in keys], source_path=[f"prepared/{k[:2]}/{k}.png" for k in keys],
                               path=[f"lines/{method}/{k[:2]}/{k}.png" for k in keys]))
    lines = pa.concat_tables(blocks)
    for schema, table in ((RAW, raw), (PREPARED, prepared), (LINES, lines)):
        ledger = Ledger(root, schema)
        ledger.delete()
        shutil.rmtree(ledger.parts_dir, ignore_errors=True)
        order = table.sort_by([(schema.id_column, "ascending"), ("key", "ascending")])
        # As a fold writes it: in (id, key) order, and saying so.
        ledger.path.write_bytes(checksummed_parquet(order.replace_schema_metadata({**schema.arrow.metadata, SORTED_KEY: SORTED_VALUE})))
    return target


def _replace(table: pa.Table, **columns: list) -> pa.Table:
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), pa.array(values, type=table.schema.field(index).type))
    return table


def measure(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in GB) of `pipe COMMAND` in a process of its own."""
    code = (
        "import resource, subprocess, sys, time\n"
        "started = time.perf_counter()\n"
        f"done = subprocess.run([sys.executable, '-m', 'pipeline.cli', *{command!r}], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
        "elapsed = time.perf_counter() - started\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20\n"
        "print(done.returncode, elapsed, peak)\n"
        "sys.stderr.write(done.stderr[-2000:] if done.returncode not in (0, 3) else '')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    returncode, elapsed, peak = result.stdout.split()
    if int(returncode) not in (0, 3):  # 3: `pipe run` found nothing to do
        raise SystemExit(f"error: `pipe {' '.join(command)}` exited {returncode}: {result.stderr.strip()}")
    return float(elapsed), float(peak)


def fit_exponent(sizes: list[int], values: list[float]) -> float:
    """b of value ~ N^b over the two largest sizes: at small N start-up dominates and a fit over every
    size would understate the growth that decides the extrapolation."""
    if len(sizes) < 2:
        return float("nan")
    (n1, v1), (n2, v2) = sorted(zip(sizes, values))[-2:]
    return math.log(max(v2, 1e-3) / max(v1, 1e-3)) / math.log(n2 / n1)


def commands(work: Path) -> dict[str, list[str]]:
    """In this order: the first `pipe run` after the ledgers changed plans every stage (the ledgers are
    new to it); the next one finds each stage's memo of that finished run (pipeline/up_to_date.py)
    still true, which is the nightly case."""
    root = work / "dataset"
    job = ["run", str(work / "job.toml"), "--from", "prepare", "--until", "extract"]
    return {
        "pipe run (plans, nothing new)": job,
        "pipe run (nightly, nothing new)": job,
        "pipe prepare (nothing new)": ["prepare", str(root / "raw.parquet"), str(root), "--workers", "2"],
        "pipe status": ["status", str(root)],
    }


def print_fits(results: dict[str, list[tuple[int, float, float]]]) -> None:
    """Each command's growth exponents and its 5M extrapolation against the targets."""
    for name, rows in results.items():
        ns, seconds, peaks = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
        time_b, memory_b = fit_exponent(ns, seconds), fit_exponent(ns, peaks)
        at_5m = seconds[-1] * (5_000_000 / ns[-1]) ** time_b
        peak_5m = peaks[-1] * (5_000_000 / ns[-1]) ** memory_b
        verdict_time = "pass" if at_5m < TARGET_NOOP_S_AT_5M else "FAIL"
        verdict_memory = "pass" if peak_5m < TARGET_PEAK_GB else "FAIL"
        print(f"{name:<32} time ~ N^{time_b:.2f}, 5M extrapolated {at_5m:.0f} s ({verdict_time} < {TARGET_NOOP_S_AT_5M:.0f} s); "
              f"memory ~ N^{memory_b:.2f}, 5M extrapolated {peak_5m:.1f} GB ({verdict_memory} < {TARGET_PEAK_GB:.0f} GB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated N")
    parser.add_argument("--max-n", type=int, default=None, help="add this N (e.g. 1000000) to the sizes")
    parser.add_argument("--keep", type=Path, default=None, help="build the datasets here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    sizes = sorted({int(n) for n in args.sizes.split(",")} | ({args.max_n} if args.max_n else set()))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pipe-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    base = build_base(folder / "base")
    results: dict[str, list[tuple[int, float, float]]] = {}
    print(f"{'N':>9}  {'command':<32} {'s':>8} {'peak GB':>8}")
    for count in sizes:
        started = time.perf_counter()
        work = grow(base, folder / f"n{count}", count)
        print(f"{count:>9}  (dataset built in {time.perf_counter() - started:.1f} s)")
        for name, command in commands(work).items():
            seconds, peak = measure(command)
            results.setdefault(name, []).append((count, seconds, peak))
            print(f"{count:>9}  {name:<32} {seconds:>8.2f} {peak:>8.2f}")
        if args.keep is None:
            shutil.rmtree(work)
    print()
    if len(sizes) < 2:
        print("a growth exponent needs two sizes or more (--sizes 10000,100000): none fitted")
    else:
        print_fits(results)
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
