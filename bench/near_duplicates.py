"""Benchmark prepare's near-duplicate search: the index with its size-chosen blocks against fixed
d+1 blocks (what prepare used before), on the same random hashes in the same run.

    python bench/near_duplicates.py [--sizes 10000,100000,1000000] [--distance 4]

For each N: N random 64-bit hashes (2% planted at most 4 bits from another one) go through
`decide_duplicates`' loop as first-run candidates. Prints the block count, seconds, distance
computations, near duplicates found (both indexes must agree) and the fitted growth exponent of the
comparisons. Absolute seconds belong to the machine they were taken on; compare the ratios.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.prepare.dedupe import NearIndex, choose_blocks  # noqa: E402


def planted_hashes(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, count, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, count, dtype=np.uint64)
    planted = rng.choice(count, count // 50, replace=False)
    flips = rng.integers(0, 64, (planted.size, 4)).astype(np.uint64)
    masks = np.bitwise_or.reduce(np.uint64(1) << flips, axis=1)
    hashes[planted] = hashes[rng.integers(0, count, planted.size)] ^ masks
    return [f"{int(h):016x}" for h in hashes]


def run(hashes: list[str], distance: int, blocks: int | None) -> tuple[float, int, int, int]:
    """Seconds, comparisons, near duplicates and blocks of one first-run pass over `hashes`."""
    index = NearIndex(distance, len(hashes), blocks=blocks)
    found = 0
    started = time.perf_counter()
    for i, phash in enumerate(hashes):
        if index.nearest(phash) is not None:
            found += 1
        else:
            index.add(f"k{i}", "s", phash)
    return time.perf_counter() - started, index.comparisons, found, len(index.spans)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--distance", type=int, default=4)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"near-duplicate search, distance {args.distance}: chosen blocks vs fixed {args.distance + 1} blocks")
    print(f"{'N':>9} {'blocks':>6} {'s':>8} {'comparisons':>13} {'fixed s':>8} {'fixed comparisons':>18} {'time ratio':>10} {'found':>7}")
    rows = []
    for size in sizes:
        hashes = planted_hashes(size, seed=size)
        seconds, comparisons, found, blocks = run(hashes, args.distance, None)
        fixed_seconds, fixed_comparisons, fixed_found, _ = run(hashes, args.distance, args.distance + 1)
        if found != fixed_found:
            print(f"error: the two indexes disagree at N={size}: {found} vs {fixed_found}", file=sys.stderr)
            return 1
        rows.append((size, comparisons, fixed_comparisons))
        print(f"{size:>9} {blocks:>6} {seconds:>8.2f} {comparisons:>13,} {fixed_seconds:>8.2f} {fixed_comparisons:>18,} {fixed_seconds / seconds:>9.1f}x {found:>7}")
    if len(rows) > 1:
        for label, column in (("chosen", 1), ("fixed", 2)):
            xs = [math.log(row[0]) for row in rows]
            ys = [math.log(max(row[column], 1)) for row in rows]
            slope = np.polyfit(xs, ys, 1)[0]
            print(f"comparisons grow as N^{slope:.2f} ({label} blocks)")
    print(f"blocks chosen for N = 10k, 100k, 1M, 5M: {[choose_blocks(args.distance, n) for n in (10**4, 10**5, 10**6, 5 * 10**6)]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
