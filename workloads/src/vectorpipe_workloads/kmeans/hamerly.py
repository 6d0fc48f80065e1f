"""Hamerly's exact k-means sweep: distance bounds let most rows skip the K-way scan.

Each row keeps an upper bound on the distance to its centroid and a lower
bound on the distance to every other one. After the centroids move, the upper
bound grows by its centroid's shift and the lower bound shrinks by the largest
shift of any other centroid; a row whose upper bound is below both its lower
bound and half the distance from its centroid to the nearest other centroid
cannot change cluster, so it is not read at all. Otherwise the upper bound is
tightened with one distance and, if that does not settle it, the row is
scanned in full by `kernels.scan_pair`, the very code Lloyd's sweep runs, so
the chosen centroid is the same bit for bit. The assignment must equal Lloyd's
float32 one, not the exact one, so every bound is widened by `slack(row)`, a
bound on the float32 rounding error of ||x||² - 2·x·c + ||c||², and a row is
only skipped when its margin exceeds twice that. Sums, counts and per-cluster
Σ||x||² are moved only for rows that change cluster (the inertia then follows
from them), as in the fused Lloyd kernel.
"""

from __future__ import annotations

import numba
import numpy as np

from vectorpipe_workloads.kmeans.kernels import _FASTMATH, F32, F64, I32, I64, scan_pair

# |fl(||x||² - 2·x·c + ||c||²) - exact| <= SLACK_PER_DIM·(d + 8)·(||x||² + ||c||²):
# the classic (d + 2)·eps bound of a float32 dot product, plus the norms'
# rounding, doubled for safety.
SLACK_PER_DIM = 2.0 * float(np.finfo(np.float32).eps)


def centroid_geometry(old: F32, new: F32) -> tuple[F64, F64, F64]:
    """Per centroid: how far it moved, the largest move of any other, half the gap to the nearest other."""
    a = new.astype(np.float64)
    shift = np.sqrt(((a - old.astype(np.float64)) ** 2).sum(axis=1))
    k = len(a)
    if k == 1:
        return shift, np.zeros(1), np.full(1, np.inf)
    order = np.argsort(shift)
    top, second = shift[order[-1]], shift[order[-2]]
    other = np.full(k, top)
    other[order[-1]] = second
    sq = (a * a).sum(axis=1)
    gaps = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (a @ a.T), 0.0))
    np.fill_diagonal(gaps, np.inf)
    half = 0.5 * gaps.min(axis=1)
    # float64 rounding of these is ~1e-16 relative; keep the bounds on the safe side.
    return shift * (1 + 1e-9) + 1e-30, other * (1 + 1e-9) + 1e-30, half * (1 - 1e-9)


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _settle(
    i: int,
    x: F32,
    best: np.float32,
    bk: int,
    second: np.float32,
    slack: float,
    state: tuple[F32, F64, I32, F32, F64, F64, F64, I64, F64],
) -> None:
    xnorm, xsq, labels, dist, upper, lower, sums, counts, nsq = state
    dd = xnorm[i] + best
    if dd < 0.0:
        dd = np.float32(0.0)
    dist[i] = dd
    upper[i] = np.sqrt(np.float64(dd) + slack)
    lo = np.float64(xnorm[i] + second) - slack
    lower[i] = np.sqrt(lo) if lo > 0.0 else 0.0
    old = labels[i]
    if old != bk:
        labels[i] = bk
        counts[bk] += 1
        nsq[bk] += xsq[i]
        row = sums[bk]
        for j in range(x.shape[0]):
            row[j] += x[j]
        if old >= 0:
            counts[old] -= 1
            nsq[old] -= xsq[i]
            row = sums[old]
            for j in range(x.shape[0]):
                row[j] -= x[j]


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, boundscheck=False)
def bounded_sweep(
    X: F32,
    xnorm: F32,
    xsq: F64,
    C: F32,
    cnorm: F32,
    geometry: tuple[F64, F64, F64],
    labels: I32,
    dist: F32,
    upper: F64,
    lower: F64,
    sums: F64,
    counts: I64,
    nsq: F64,
) -> int:
    """One Hamerly sweep over a block; rows with label -1 are scanned in full. Returns rows scanned."""
    shift, other, half = geometry
    n, d = X.shape
    cmax = np.float64(cnorm.max())
    unit = SLACK_PER_DIM * (d + 8)
    state = (xnorm, xsq, labels, dist, upper, lower, sums, counts, nsq)
    pending = -1
    scanned = 0
    for i in range(n):
        a = labels[i]
        slack = unit * (np.float64(xnorm[i]) + cmax)
        if a >= 0:
            u = upper[i] + shift[a]
            lw = lower[i] - other[a]
            lower[i] = lw
            m = max(lw, 2.0 * half[a] - u)
            if m > 0.0 and u * u + 2.0 * slack < m * m:
                upper[i] = u
                continue
            x = X[i]
            ca = C[a]
            s = np.float32(0.0)
            for j in range(d):
                s += x[j] * ca[j]
            dd = np.float64(xnorm[i] + cnorm[a] - np.float32(2.0) * s)
            u = np.sqrt(max(dd, 0.0) + slack)
            upper[i] = u
            m = max(lw, 2.0 * half[a] - u)
            if m > 0.0 and u * u + 2.0 * slack < m * m:
                continue
        scanned += 1
        if pending < 0:
            pending = i
            continue
        p = pending
        pending = -1
        bx, kx, sx, by, ky, sy = scan_pair(X[p], X[i], C, cnorm)
        pslack = unit * (np.float64(xnorm[p]) + cmax)
        _settle(p, X[p], bx, kx, sx, pslack, state)
        _settle(i, X[i], by, ky, sy, slack, state)
    if pending >= 0:
        p = pending
        bx, kx, sx, _, _, _ = scan_pair(X[p], X[p], C, cnorm)
        _settle(p, X[p], bx, kx, sx, unit * (np.float64(xnorm[p]) + cmax), state)
    return scanned


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, boundscheck=False)
def assigned_distances(X: F32, xnorm: F32, C: F32, cnorm: F32, labels: I32, dist: F32) -> None:
    """Squared distance of every row to its labelled centroid, by the same expansion."""
    n, d = X.shape
    two = np.float32(2.0)
    for i in range(n):
        x = X[i]
        c = C[labels[i]]
        s = np.float32(0.0)
        for j in range(d):
            s += x[j] * c[j]
        dd = xnorm[i] + cnorm[labels[i]] - two * s
        dist[i] = dd if dd > 0.0 else np.float32(0.0)


def inertia_from_sums(C: F32, sums: F64, counts: I64, nsq: F64) -> float:
    """Σ over rows of ||x - c||² from per-cluster Σx, count and Σ||x||², in float64."""
    c = C.astype(np.float64)
    total = nsq.sum() - 2.0 * float((c * sums).sum()) + float((counts * (c * c).sum(axis=1)).sum())
    return max(float(total), 0.0)
