"""Exact and near duplicates: who is kept, and that decisions do not depend on input order."""

from __future__ import annotations

import random

from pipeline.prepare.dedupe import Candidate, decide_duplicates
from manifests.reasons import DUPLICATE, NEAR_DUPLICATE


def _flip(phash: str, bits: int, shift: int = 0) -> str:
    """Flip `bits` consecutive bits starting at bit `shift`."""
    return f"{int(phash, 16) ^ (((1 << bits) - 1) << shift):016x}"


def test_exact_duplicates_keep_the_first_source():
    candidates = [Candidate(0, "k1", "b.png", "00ff00ff00ff00ff", 100), Candidate(1, "k1", "a.png", "00ff00ff00ff00ff", 100)]
    decisions = decide_duplicates([], candidates, max_distance=4)
    assert list(decisions) == [0]
    assert decisions[0].reason == DUPLICATE and decisions[0].duplicate_of == "a.png"


def test_near_duplicates_keep_the_largest_and_respect_the_distance():
    base = "0123456789abcdef"
    candidates = [
        Candidate(0, "small", "s.png", _flip(base, 3), 100),
        Candidate(1, "big", "b.png", base, 400),
        Candidate(2, "far", "f.png", _flip(base, 5, shift=32), 100)  # 8 bits from "small",
    ]
    decisions = decide_duplicates([], candidates, max_distance=4)
    assert set(decisions) == {0}
    assert decisions[0].reason == NEAR_DUPLICATE and decisions[0].duplicate_of == "b.png"
    assert "3 bits" in decisions[0].detail
    assert decide_duplicates([], candidates, max_distance=None) == {}


def test_previously_kept_images_stay_kept():
    base = "fedcba9876543210"
    kept = [Candidate(0, "old", "old.png", base, 10)]
    decisions = decide_duplicates(kept, [Candidate(1, "new", "new.png", _flip(base, 1), 10_000)], max_distance=4)
    assert decisions[1].duplicate_of == "old.png"


def test_decisions_do_not_depend_on_input_order():
    rng = random.Random(0)
    hashes = [f"{rng.getrandbits(64):016x}" for _ in range(40)]
    candidates = []
    for index in range(300):
        parent = hashes[index % 40]
        phash = _flip(parent, rng.randrange(0, 7)) if index >= 40 else parent
        candidates.append(Candidate(index, f"k{index:03d}", f"s{index:03d}", phash, rng.choice([100, 200, 300])))
    reference = decide_duplicates([], candidates, max_distance=4)
    shuffled = candidates[:]
    rng.shuffle(shuffled)
    assert decide_duplicates([], shuffled, max_distance=4) == reference
    # Brute force: every kept pair is farther apart than the distance, every rejection has a kept neighbour.
    kept = [c for c in candidates if c.row not in reference]
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            assert (int(a.phash, 16) ^ int(b.phash, 16)).bit_count() > 4
    by_source = {c.source: c for c in candidates}
    for row, decision in reference.items():
        neighbour = by_source[decision.duplicate_of]
        assert neighbour.row not in reference
        assert (int(neighbour.phash, 16) ^ int(candidates[row].phash, 16)).bit_count() <= 4
