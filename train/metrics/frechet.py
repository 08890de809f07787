"""Frechet distance (FID, C-FID) and the kernel inception distance (KID) of two sets of features.

Both follow the reference implementations' arithmetic: statistics in float64, the covariance with
N - 1 in the denominator (np.cov), and for KID the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3
with the unbiased MMD^2 estimator, averaged over random subsets (torch-fidelity's defaults: 100
subsets of 1000).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of N feature vectors."""

    mean: np.ndarray
    covariance: np.ndarray
    count: int


def gaussian_stats(features: np.ndarray) -> GaussianStats:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got shape {features.shape}")
    return GaussianStats(features.mean(axis=0), np.cov(features, rowvar=False), features.shape[0])


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)).

    The trace of the matrix square root is the sum of the square roots of the eigenvalues of S_a S_b
    (a product of two positive semi-definite matrices has real, non-negative eigenvalues; round-off
    leaves tiny negative or imaginary parts, which are dropped). This equals the sqrtm route of the
    reference code without its iterative solver, and does not fail on the singular covariances of
    sets smaller than the feature dimension.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature dimensions differ: {a.mean.shape[0]} and {b.mean.shape[0]}")
    difference = a.mean - b.mean
    eigenvalues = np.linalg.eigvals(a.covariance @ b.covariance).real
    # With fewer samples than dimensions the product is singular, and its zero eigenvalues come out
    # as round-off of either sign (about 1e-13 here); their square roots would add up to ~1e-4.
    # Below the numerical-rank tolerance (as np.linalg.matrix_rank sets it) they are taken as 0.
    tolerance = np.abs(eigenvalues).max(initial=0.0) * eigenvalues.size * np.finfo(np.float64).eps
    trace_sqrt = np.sqrt(np.where(eigenvalues > tolerance, eigenvalues, 0.0)).sum()
    distance = difference @ difference + np.trace(a.covariance) + np.trace(b.covariance) - 2.0 * trace_sqrt
    return float(distance)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    return (x @ y.T / x.shape[1] + coef0) ** degree


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimate of MMD^2 between two equally sized samples under the cubic kernel."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


@dataclass(frozen=True)
class KernelDistance:
    mean: float
    std: float
    subsets: int
    subset_size: int


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> KernelDistance:
    """KID: the unbiased MMD^2 over `subsets` random subsets (without replacement) of each set.

    The subset size is capped by the smaller set, so a small validation split is still scored
    (with a wider spread over subsets, which the std reports).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise ValueError(f"KID needs at least 2 vectors per set, got {a.shape[0]} and {b.shape[0]}")
    rng = np.random.default_rng(seed)
    values = np.array([unbiased_mmd2(a[rng.choice(a.shape[0], size, replace=False)], b[rng.choice(b.shape[0], size, replace=False)]) for _ in range(subsets)])
    return KernelDistance(float(values.mean()), float(values.std()), subsets, size)
