"""The centroid update step of k-means on plain numpy arrays: means, shift, stop test, empty clusters.

`update_centroids` moves each centroid to the mean of its rows (an empty cluster
keeps its previous one), `center_shift` measures how far they moved and
`tolerance` turns scikit-learn's relative `tol` into the absolute threshold on
that shift. A cluster left empty is reseeded with a row far from its centroid:
`farthest` picks the rows in a total order (ties by the smaller index, so every
rank count picks the same rows) and `relocate_empty` moves them over in place.
`core` re-exports all of these; they know nothing of engines, ranks or MPI.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vectorpipe_workloads.kmeans.kernels import F32, F64, I64


def tolerance(n_rows: int, s1: F64, s2: F64, tol: float) -> float:
    """scikit-learn's `_tolerance`: tol × mean per-feature variance, from shifted moments."""
    if tol == 0 or n_rows == 0:
        return 0.0
    mean = s1 / n_rows
    var = np.maximum(s2 / n_rows - mean * mean, 0.0)
    return float(np.mean(var) * tol)


def update_centroids(sums: F64, counts: I64, previous: F32) -> F32:
    """Means of the clusters; a cluster with no rows keeps its previous centroid."""
    new = previous.astype(np.float64)
    full = counts > 0
    new[full] = sums[full] / counts[full, None]
    return new.astype(np.float32)


def center_shift(old: F32, new: F32) -> float:
    """Σ over clusters of the squared distance each centroid moved."""
    diff = new.astype(np.float64) - old.astype(np.float64)
    return float((diff * diff).sum())


def farthest(values: NDArray[Any], index: NDArray[Any], m: int) -> NDArray[np.intp]:
    """Positions of the m largest values, ties broken by the smaller index: a total order."""
    m = min(m, len(values))
    if m <= 0:
        return np.empty(0, np.intp)
    threshold = np.partition(values, len(values) - m)[len(values) - m]
    cand = np.flatnonzero(values >= threshold)
    order = np.lexsort((index[cand], -values[cand].astype(np.float64)))
    return cand[order[:m]]


def relocate_empty(
    sums: F64, counts: I64, empty: Iterable[int], points: F64, point_labels: Iterable[int]
) -> None:
    """Seed each empty cluster with one far row, taking that row out of its old cluster (in place)."""
    for e, p, old in zip(empty, points, point_labels, strict=True):
        sums[old] -= p
        counts[old] -= 1
        sums[e] = p
        counts[e] = 1
