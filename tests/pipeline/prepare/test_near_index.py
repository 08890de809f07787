"""The near-duplicate index against brute force: the same decisions, row by row, on random and on
clustered hashes, whatever block count the dataset's size picks, with comparisons far below all-pairs."""

from __future__ import annotations

import numpy as np
import pytest

from manifests.reasons import DUPLICATE, NEAR_DUPLICATE
from pipeline.prepare.dedupe import Candidate, Decision, NearIndex, choose_blocks, decide_duplicates


def brute_force(kept: list[Candidate], candidates: list[Candidate], max_distance: int) -> dict[int, Decision]:
    """decide_duplicates written the plain way: every candidate against every kept hash (numpy popcount)."""
    values = [int(c.phash, 16) for c in kept]
    keys, sources = [c.key for c in kept], [c.source for c in kept]
    by_key = {}
    for c in kept:
        by_key.setdefault(c.key, c.source)
    decisions = {}
    for c in sorted(candidates, key=lambda c: (-c.area, c.key, c.source)):
        if c.key in by_key:
            decisions[c.row] = Decision(DUPLICATE, by_key[c.key], f"same bytes as {by_key[c.key]}")
            continue
        value = int(c.phash, 16)
        if values:
            distances = np.bitwise_count(np.array(values, np.uint64) ^ np.uint64(value))
            close = np.flatnonzero(distances <= max_distance)
            if close.size:
                distance, key, source = min((int(distances[i]), keys[i], sources[i]) for i in close)
                decisions[c.row] = Decision(NEAR_DUPLICATE, source, f"perceptual hash {distance} bits from {key} ({source})")
                continue
        values.append(value)
        keys.append(c.key)
        sources.append(c.source)
        by_key.setdefault(c.key, c.source)
    return decisions


def candidates_of(hashes: np.ndarray, rng: np.random.Generator, start: int = 0) -> list[Candidate]:
    areas = rng.integers(1, 50, hashes.size)  # few distinct areas: ties broken by key, as in a real ledger
    return [Candidate(start + i, f"k{start + i:07d}", f"s{start + i}.png", f"{int(h):016x}", int(a)) for i, (h, a) in enumerate(zip(hashes, areas))]


def clustered(count: int, rng: np.random.Generator) -> np.ndarray:
    """Hashes in tight clusters: centres plus 0-6 random flipped bits, so many pairs sit at 1-6 bits."""
    centres = rng.integers(0, 2**63, count // 8, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, count // 8, dtype=np.uint64)
    picked = centres[rng.integers(0, centres.size, count)]
    for _ in range(6):
        flip = rng.random(count) < 0.5
        bits = rng.integers(0, 64, count).astype(np.uint64)
        picked = np.where(flip, picked ^ (np.uint64(1) << bits), picked)
    return picked


@pytest.mark.parametrize("distance", [2, 4, 6])
def test_clustered_hashes_get_the_brute_force_decisions(distance):
    rng = np.random.default_rng(distance)
    hashes = clustered(10_000, rng)
    kept, candidates = candidates_of(hashes[:2000], rng), candidates_of(hashes[2000:], rng, start=2000)
    expected = brute_force(kept, candidates, distance)
    assert len(expected) > 500  # the clusters do make near duplicates
    assert decide_duplicates(kept, candidates, distance) == expected


def random_hashes_with_planted_pairs(count: int, rng: np.random.Generator) -> np.ndarray:
    hashes = rng.integers(0, 2**63, count, dtype=np.uint64) * np.uint64(2)
    planted = rng.choice(count, count // 50, replace=False)  # 2% copied from another hash, 1-5 bits off
    for i in planted:
        hashes[i] = hashes[rng.integers(count)]
        for bit in rng.choice(64, rng.integers(1, 6), replace=False):
            hashes[i] ^= np.uint64(1) << np.uint64(bit)
    return hashes


@pytest.mark.parametrize("count", [10_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_random_hashes_get_the_brute_force_decisions(count):
    rng = np.random.default_rng(count)
    candidates = candidates_of(random_hashes_with_planted_pairs(count, rng), rng)
    expected = brute_force([], candidates, 4)
    assert 50 < len(expected) < count // 50
    assert decide_duplicates([], candidates, 4) == expected


def test_comparisons_per_query_stay_bounded_as_the_dataset_grows():
    """Random hashes: fewer, wider blocks as N grows keep a query's comparisons bounded (fixed 12-bit
    blocks compared each query with about 5 * N / 7000 hashes: 143 at 200k)."""
    rng = np.random.default_rng(0)
    per_query = {}
    for count in (2_000, 20_000, 200_000):
        index = NearIndex(4, count)
        for i, h in enumerate(rng.integers(0, 2**63, count, dtype=np.uint64)):
            index.add(f"k{i}", "s", f"{int(h) * 2:016x}")
        queries = rng.integers(0, 2**63, 2000, dtype=np.uint64)
        for h in queries:
            index.nearest(f"{int(h) * 2:016x}")
        per_query[count] = index.comparisons / queries.size
    assert max(per_query.values()) < 20 and per_query[200_000] < 143 / 10, per_query
    assert [choose_blocks(4, n) for n in (2_000, 200_000)] == [5, 3]
