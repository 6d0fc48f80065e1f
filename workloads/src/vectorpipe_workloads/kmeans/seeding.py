"""k-means++ seeding on a sample whose rows are a function of (rows, k, seed) alone.

The seed spawns two independent generators: one picks the sorted global row
indices of the init sample (so every rank, whatever the rank count, agrees on
it), the other drives scikit-learn's greedy k-means++ on that sample. With
several starts (`best_init`), that second stream yields one k-means++ init
after another, each is refined by a plain float64 Lloyd on the sample, and the
refined centroids with the lowest sample inertia seed the full run; every rank
holds the same sample and computes the same choice without communicating.
Split out of `core`, which re-exports the single-start names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from vectorpipe_workloads.kmeans.kernels import F32, F64, I64

SAMPLE_MIN = 20000
SAMPLE_PER_CLUSTER = 10
# Lloyd on a sample of ~20k rows settles well within this; the cap only bounds
# the cost of a start that oscillates between equal-cost partitions.
RESTART_ITERATIONS = 50
# ...and stops early once an update gains less than this share of the inertia.
RESTART_TOL = 1e-4
# Rows per distance block of the sample Lloyd: bounds the float64 scratch to
# BLOCK x k x 8 bytes (32 MiB at k = 1000).
RESTART_BLOCK_ROWS = 4096


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


@dataclass
class InitInfo:
    """Which of the k-means++ starts seeded the run and how each did on the sample."""

    n_init: int
    chosen: int = 0  # index of the winning start, in draw order
    # Per start, after its sample Lloyd; empty when a single start is used as drawn.
    inertias: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)


def _nearest(X: F64, xsq: F64, C: F64) -> tuple[I64, float]:
    """Index of the nearest centroid per row (ties to the lower index), in row blocks,
    and the summed squared distances by the norm expansion (for the stopping rule)."""
    labels = np.empty(len(X), np.int64)
    csq = (C * C).sum(axis=1)
    total = 0.0
    for lo in range(0, len(X), RESTART_BLOCK_ROWS):
        hi = min(lo + RESTART_BLOCK_ROWS, len(X))
        d = xsq[lo:hi, None] - 2.0 * (X[lo:hi] @ C.T) + csq[None, :]
        labels[lo:hi] = np.argmin(d, axis=1)
        total += float(np.maximum(d[np.arange(hi - lo), labels[lo:hi]], 0.0).sum())
    return labels, total


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _label_sums(X: F64, labels: I64, k: int) -> F64:
    # One sequential pass in row order: the same sums on every rank, and no
    # sort or gathered copy of the sample as reduceat would need.
    sums = np.zeros((k, X.shape[1]), np.float64)
    for i in range(X.shape[0]):
        row = sums[labels[i]]
        for j in range(X.shape[1]):
            row[j] += X[i, j]
    return sums


def _means(X: F64, labels: I64, previous: F64) -> F64:
    """Cluster means; a cluster left empty keeps its previous centroid."""
    k = len(previous)
    counts = np.bincount(labels, minlength=k)
    present = np.flatnonzero(counts)
    out = previous.copy()
    sums = _label_sums(np.ascontiguousarray(X), np.ascontiguousarray(labels, np.int64), k)
    out[present] = sums[present] / counts[present, None]
    return out


def refine(
    X: F64, centroids: NDArray[Any], max_iterations: int, tol: float = RESTART_TOL
) -> tuple[F64, float, int]:
    """Plain Lloyd from `centroids` until no row changes cluster, an update lowers the
    inertia by less than `tol` of it, or the cap: (C, inertia, updates).

    The inertia is that of the returned centroids, each row at its nearest.
    """
    C = np.asarray(centroids, dtype=np.float64).copy()
    xsq = (X * X).sum(axis=1)
    labels, potential = _nearest(X, xsq, C)
    updates = 0
    while updates < max_iterations:
        C = _means(X, labels, C)
        updates += 1
        new, after = _nearest(X, xsq, C)
        if np.array_equal(new, labels):
            break
        # Without structure to settle into, rows keep trading places at a
        # negligible gain; choosing among starts does not need that tail.
        settled = potential - after <= tol * after
        labels, potential = new, after
        if settled:
            break
    # Exact differences rather than the norm expansion: starts are compared on this.
    inertia = float(np.square(X - C[labels]).sum())
    return C, inertia, updates


def best_init(
    sample: NDArray[Any],
    k: int,
    rng: np.random.Generator,
    n_init: int = 1,
    max_iterations: int = RESTART_ITERATIONS,
) -> tuple[F32, InitInfo]:
    """Centroids to seed the full run: the best of `n_init` refined k-means++ starts.

    One start is `kmeans_plusplus(sample, k, rng)` exactly, unrefined. More
    are drawn one after another from `rng`, each refined by `refine` on the
    sample; the lowest sample inertia wins, ties to the earliest start. The
    result depends only on the sample, k, the generator's state and the
    arguments, so ranks holding the same sample agree.
    """
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    if n_init == 1:
        return kmeans_plusplus(sample, k, rng), InitInfo(n_init=1)
    X = np.asarray(sample, dtype=np.float64)
    info = InitInfo(n_init=n_init)
    best: F64 | None = None
    for start in range(n_init):
        C, inertia, updates = refine(X, kmeans_plusplus(X, k, rng), max_iterations)
        info.inertias.append(inertia)
        info.iterations.append(updates)
        if best is None or inertia < info.inertias[info.chosen]:
            best, info.chosen = C, start
    assert best is not None
    return best.astype(np.float32), info
