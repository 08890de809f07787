"""Exact and near-duplicate decisions over a whole dataset, deterministic and incremental.

Candidates are visited best first (largest original, then key, then source), and each is kept unless
a kept image has the same key (exact duplicate) or a perceptual hash within `max_distance` bits (near
duplicate). Images kept by an earlier run stay kept: adding inputs never removes a sample that later
stages may already have used.

Looking up "any kept hash within d bits" uses multi-index hashing (Norouzi et al., "Fast Search in
Hamming Space with Multi-Index Hashing"): split the 64 bits into m blocks; two hashes within d bits
differ in at most d // m bits of at least one block (pigeonhole), so a query looks up, in each block's
table, every block value within d // m bits of its own, and compares only the hashes found there. The
block count is chosen from the dataset's size so that a bucket holds about one hash: probes stay
constant per query and the comparisons grow about linearly with N, where fixed 12-bit blocks made them
grow with N squared (every bucket holding N / 8192 hashes).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass

from manifests.reasons import DUPLICATE, NEAR_DUPLICATE

HASH_BITS = 64


@dataclass(frozen=True)
class Candidate:
    row: int  # caller's index of the row
    key: str
    source: str
    phash: str
    area: int


@dataclass(frozen=True)
class Decision:
    reason: str
    duplicate_of: str  # the kept input's source
    detail: str


def _block_spans(blocks: int) -> list[tuple[int, int]]:
    """(low bit, width) of `blocks` nearly equal blocks covering the 64 bits."""
    bounds = [round(i * HASH_BITS / blocks) for i in range(blocks + 1)]
    return [(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _variants(width: int, radius: int) -> int:
    """How many block values lie within `radius` bits of one block value."""
    return sum(math.comb(width, flipped) for flipped in range(radius + 1))


def choose_blocks(max_distance: int, size: int) -> int:
    """The block count that minimises the expected work of one query over `size` hashes: each probe
    costs one table lookup plus the comparisons with the hashes in its bucket (size / 2**width)."""
    def cost(blocks: int) -> float:
        radius = max_distance // blocks
        return sum(_variants(width, radius) * (1 + size / 2**width) for _, width in _block_spans(blocks))

    return min(range(1, min(max_distance + 1, HASH_BITS) + 1), key=lambda blocks: (cost(blocks), -blocks))


class NearIndex:
    """Kept hashes by block value; `nearest` finds the closest within `max_distance` bits exactly.
    `comparisons` counts the full-hash distance computations (for benchmarks and tests)."""

    def __init__(self, max_distance: int, expected_size: int, blocks: int | None = None) -> None:
        self.max_distance = max_distance
        self.spans = _block_spans(blocks or choose_blocks(max_distance, max(expected_size, 1)))
        radius = max_distance // len(self.spans)
        # Every block-value difference of at most `radius` bits, as XOR masks, one list per block width.
        self.masks = {width: _masks(width, radius) for width in {w for _, w in self.spans}}
        self.tables: list[dict[int, list[tuple[int, str, str]]]] = [defaultdict(list) for _ in self.spans]
        self.by_key: dict[str, str] = {}
        self.comparisons = 0

    def _blocks(self, value: int) -> list[int]:
        return [(value >> lo) & ((1 << width) - 1) for lo, width in self.spans]

    def add(self, key: str, source: str, phash: str) -> None:
        self.by_key.setdefault(key, source)
        value = int(phash, 16)
        for table, block in zip(self.tables, self._blocks(value)):
            table[block].append((value, key, source))

    def nearest(self, phash: str) -> tuple[int, str, str] | None:
        """(distance, key, source) of the closest kept hash within max_distance, ties by key."""
        value = int(phash, 16)
        best: tuple[int, str, str] | None = None
        for (_, width), table, block in zip(self.spans, self.tables, self._blocks(value)):
            for mask in self.masks[width]:
                for other, key, source in table.get(block ^ mask, ()):
                    self.comparisons += 1
                    distance = (value ^ other).bit_count()
                    if distance <= self.max_distance and (best is None or (distance, key) < best[:2]):
                        best = (distance, key, source)
        return best


def _masks(width: int, radius: int) -> list[int]:
    return [sum(1 << bit for bit in bits) for flipped in range(radius + 1) for bits in itertools.combinations(range(width), flipped)]


def decide_duplicates(
    kept: list[Candidate], candidates: list[Candidate], max_distance: int | None
) -> dict[int, Decision]:
    """Decisions for the candidates that are duplicates, by row; candidates not listed are kept.

    `kept` are images settled as kept by earlier runs. `max_distance=None` turns near-duplicate
    detection off (exact duplicates are still found).
    """
    index = NearIndex(max_distance if max_distance is not None else 0, len(kept) + len(candidates))
    for candidate in kept:
        index.add(candidate.key, candidate.source, candidate.phash)
    decisions: dict[int, Decision] = {}
    for candidate in sorted(candidates, key=lambda c: (-c.area, c.key, c.source)):
        if candidate.key in index.by_key:
            source = index.by_key[candidate.key]
            decisions[candidate.row] = Decision(DUPLICATE, source, f"same bytes as {source}")
            continue
        if max_distance is not None:
            near = index.nearest(candidate.phash)
            if near is not None:
                distance, key, source = near
                decisions[candidate.row] = Decision(
                    NEAR_DUPLICATE, source, f"perceptual hash {distance} bits from {key} ({source})"
                )
                continue
        index.add(candidate.key, candidate.source, candidate.phash)
    return decisions
