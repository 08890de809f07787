"""Goodness-of-fit helpers for the synthesis tests: draws are compared with the published distributions."""

from __future__ import annotations

import numpy as np
from scipy import stats

# A correct sampler fails a test at this level once in 10,000 runs; a wrong one fails at once.
ALPHA = 1e-4


def assert_fits(observed_counts: np.ndarray, expected_probabilities: np.ndarray, what: str) -> None:
    """Pearson chi-square test of counts against probabilities (bins with tiny expectations pooled)."""
    observed = np.asarray(observed_counts, dtype=float)
    expected = np.asarray(expected_probabilities, dtype=float) * observed.sum()
    assert abs(expected.sum() - observed.sum()) < 1e-6 * observed.sum(), f"{what}: probabilities must sum to 1"
    keep = expected >= 5
    pooled_obs = np.append(observed[keep], observed[~keep].sum())
    pooled_exp = np.append(expected[keep], expected[~keep].sum())
    if pooled_exp[-1] == 0:
        pooled_obs, pooled_exp = pooled_obs[:-1], pooled_exp[:-1]
    p_value = stats.chisquare(pooled_obs, pooled_exp).pvalue
    assert p_value > ALPHA, f"{what}: chi-square p = {p_value:.2e}"


def assert_uniform_integers(values, low: int, high: int, what: str) -> None:
    """Values are integers in [low, high], uniformly distributed."""
    values = np.asarray(values)
    assert values.min() >= low and values.max() <= high, f"{what}: outside [{low}, {high}]: {values.min()}..{values.max()}"
    counts = np.bincount(values - low, minlength=high - low + 1)
    assert_fits(counts, np.full(high - low + 1, 1 / (high - low + 1)), what)


def assert_share(hits: int, total: int, probability: float, what: str) -> None:
    p_value = stats.binomtest(hits, total, probability).pvalue
    assert p_value > ALPHA, f"{what}: {hits}/{total} against p={probability}: binomial p = {p_value:.2e}"
