"""Paste's donor keys with O(1) lookups draw exactly the donors a plain tuple draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.artifacts.paste import draw_paste_artifacts
from synth.common import DonorKeys, DrawInput, SynthContext


def test_donor_keys_draw_the_same_donors_as_a_tuple():
    keys = tuple(f"k{i:03d}" for i in range(50))
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    for own in ("k000", "k025", "k049", "not-a-donor"):
        sample = DrawInput(own, image)
        for seed in range(40):
            plain = draw_paste_artifacts(np.random.default_rng(seed), sample, SynthContext(donor_keys=keys))
            fast = draw_paste_artifacts(np.random.default_rng(seed), sample, SynthContext(donor_keys=DonorKeys(keys)))
            assert plain == fast
            assert all(p["donor"] != own for p in fast["pastes"])


def test_donor_keys_behave_as_a_sequence_and_refuse_repeats():
    keys = DonorKeys(["b", "a", "c"])
    assert (len(keys), keys[1], keys.index("c"), "a" in keys, "z" in keys, list(keys)) == (3, "a", 2, True, False, ["b", "a", "c"])
    with pytest.raises(ValueError):
        keys.index("z")
    with pytest.raises(ValueError, match="distinct"):
        DonorKeys(["a", "a"])
