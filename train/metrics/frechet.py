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
    """Mean and covariance of N feature vectors; with fewer vectors than dimensions, also the centred
    vectors as a factor F (D x N, F F^T = covariance), which makes the distance exact and fast."""

    mean: np.ndarray
    covariance: np.ndarray
    count: int
    factor: np.ndarray | None = None

    @property
    def rank_bound(self) -> int:
        """The covariance of N vectors in D dimensions has rank at most min(N - 1, D)."""
        return min(self.count - 1, self.covariance.shape[0])


def gaussian_stats(features: np.ndarray) -> GaussianStats:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got shape {features.shape}")
    count, dim = features.shape
    mean = features.mean(axis=0)
    factor = ((features - mean) / np.sqrt(count - 1)).T if count <= dim else None
    return GaussianStats(mean, np.cov(features, rowvar=False), count, factor)


def _root_factor(stats: GaussianStats) -> np.ndarray:
    """F with F F^T = S: the centred vectors / sqrt(N - 1) when kept, else from S's r = min(N - 1, D)
    largest eigenpairs (D x r).

    The other D - r eigenvalues are exactly 0 (the covariance of N vectors has rank <= N - 1): what
    eigh returns for them is round-off, left out by count rather than by a cut-off. Kept eigenvalues
    that round-off made negative (a set with repeated vectors has a lower rank still) count as 0.
    """
    if stats.factor is not None:
        return stats.factor
    values, vectors = np.linalg.eigh(stats.covariance)  # ascending
    rank = stats.rank_bound
    values, vectors = values[values.size - rank :], vectors[:, values.size - rank :]
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def trace_sqrt_product(a: GaussianStats, b: GaussianStats) -> float:
    """tr((S_a S_b)^(1/2)): the sum of the singular values of F_a^T F_b, for any F with F F^T = S.

    (S_a S_b has the nonzero eigenvalues of (F_a^T F_b)(F_a^T F_b)^T, so their square roots are the
    singular values of F_a^T F_b.) With the centred features X_a, X_b as factors, that is the sum of
    the singular values of X_a X_b^T / sqrt((N_a - 1)(N_b - 1)); from the covariances alone, the
    factors come from their eigenpairs. Either way it is the exact value up to float64 round-off.
    """
    return float(np.linalg.svd(_root_factor(a).T @ _root_factor(b), compute_uv=False).sum())


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)).

    The trace of the matrix square root is computed exactly (see `trace_sqrt_product`): the value
    of the formula for these covariances up to float64 round-off, also for the singular covariances
    of sets smaller than the feature dimension (S_a S_b then has rank at most min(N_a, N_b) - 1 and
    its other eigenvalues are exactly 0). With more samples than dimensions the reference routes
    agree with it to round-off (scipy.linalg.sqrtm, as in pytorch-fid and clean-fid: about 1e-14
    relative). With fewer they do not quite: sqrtm of the singular product, and torch-fidelity's sum
    of the square roots of all eigenvalues of S_a S_b (round-off ones included), land 1e-8 to 1e-5
    relative away from this value.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature dimensions differ: {a.mean.shape[0]} and {b.mean.shape[0]}")
    difference = a.mean - b.mean
    distance = difference @ difference + np.trace(a.covariance) + np.trace(b.covariance) - 2.0 * trace_sqrt_product(a, b)
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
