"""Exact and near-duplicate decisions over a whole dataset, deterministic and incremental.

Candidates are visited best first (largest original, then key, then source), and each is kept unless
a kept image has the same key (exact duplicate) or a perceptual hash within `max_distance` bits (near
duplicate). Images kept by an earlier run stay kept: adding inputs never removes a sample that later
stages may already have used.

Looking up "any kept hash within d bits" uses multi-index hashing: split the 64 bits into d+1 blocks;
two hashes within distance d agree exactly on at least one block (pigeonhole), so only kept hashes
sharing a block value are compared. That keeps it near-linear where all-pairs would be quadratic.
"""

from __future__ import annotations

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


class _KeptIndex:
    def __init__(self, max_distance: int) -> None:
        self.max_distance = max_distance
        blocks = max_distance + 1
        bounds = [round(i * HASH_BITS / blocks) for i in range(blocks + 1)]
        self.spans = [(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]
        self.tables: list[dict[int, list[tuple[int, str, str]]]] = [defaultdict(list) for _ in self.spans]
        self.by_key: dict[str, str] = {}

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
        for table, block in zip(self.tables, self._blocks(value)):
            for other, key, source in table.get(block, ()):
                distance = (value ^ other).bit_count()
                if distance <= self.max_distance and (best is None or (distance, key) < best[:2]):
                    best = (distance, key, source)
        return best


def decide_duplicates(
    kept: list[Candidate], candidates: list[Candidate], max_distance: int | None
) -> dict[int, Decision]:
    """Decisions for the candidates that are duplicates, by row; candidates not listed are kept.

    `kept` are images settled as kept by earlier runs. `max_distance=None` turns near-duplicate
    detection off (exact duplicates are still found).
    """
    index = _KeptIndex(max_distance if max_distance is not None else 0)
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
