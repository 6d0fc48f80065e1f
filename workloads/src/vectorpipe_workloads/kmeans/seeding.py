"""k-means++ seeding on a sample whose rows are a function of (rows, k, seed) alone.

The seed spawns two independent generators: one picks the sorted global row
indices of the init sample (so every rank, whatever the rank count, agrees on
it), the other drives scikit-learn's greedy k-means++ on that sample. Split
out of `core`, which re-exports these names.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vectorpipe_workloads.kmeans.kernels import F32, F64, I64

SAMPLE_MIN = 20000
SAMPLE_PER_CLUSTER = 10


def init_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the init sample and for k-means++, from the seed alone."""
    a, b = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


def sample_size(n_rows: int, k: int) -> int:
    return min(n_rows, max(SAMPLE_PER_CLUSTER * k, SAMPLE_MIN))


def sample_indices(n_rows: int, k: int, seed: int, size: int | None = None) -> I64:
    """Sorted global row indices of the init sample: a function of (rows, k, seed) only."""
    rng, _ = init_streams(seed)
    m = sample_size(n_rows, k) if size is None else min(size, n_rows)
    return np.sort(rng.choice(n_rows, size=m, replace=False)).astype(np.int64)


def _sq_distances(points: F64, X: F64, xsq: F64) -> F64:
    d: F64 = (points * points).sum(axis=1)[:, None] - 2.0 * (points @ X.T) + xsq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def kmeans_plusplus(
    sample: NDArray[Any], k: int, rng: np.random.Generator | int, n_local_trials: int | None = None
) -> F32:
    """k centroids from the sample by greedy k-means++ (scikit-learn's variant), deterministic in rng.

    Each step draws 2 + ln k candidates with probability proportional to the
    squared distance to the nearest chosen centroid and keeps the one that
    lowers the potential most. Work is O(k · trials · m · d) on an m-row sample.
    """
    gen = init_streams(rng)[1] if isinstance(rng, int) else rng
    X = np.asarray(sample, dtype=np.float64)
    m = len(X)
    if not 1 <= k <= m:
        raise ValueError(f"k-means++ needs 1 <= k <= sample rows, got k={k}, rows={m}")
    trials = n_local_trials or 2 + int(math.log(k))
    xsq = (X * X).sum(axis=1)
    centers = np.empty((k, X.shape[1]), np.float64)
    first = int(gen.integers(m))
    centers[0] = X[first]
    closest = _sq_distances(X[first : first + 1], X, xsq)[0]
    potential = float(closest.sum())
    for c in range(1, k):
        draws = gen.random(trials) * potential
        candidates = np.minimum(np.searchsorted(np.cumsum(closest), draws), m - 1)
        dist = np.minimum(closest[None, :], _sq_distances(X[candidates], X, xsq))
        pots = dist.sum(axis=1)
        best = int(np.argmin(pots))
        closest, potential = dist[best], float(pots[best])
        centers[c] = X[candidates[best]]
    return centers.astype(np.float32)
