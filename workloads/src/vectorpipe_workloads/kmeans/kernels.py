"""The numba kernels of the k-means: each one pass over a block of rows, GIL released.

`fused_sweep` is plain Lloyd's hot loop: for every row it finds the nearest
centroid through ||x||² - 2·x·c + ||c||² in float32 and, while the row is
still in L1, moves it between the clusters' float64 sums if its label changed
(the sums persist from sweep to sweep, label -1 meaning "in no sum yet"), so
one Lloyd iteration reads the matrix from memory once and pays for
accumulation only on the rows that moved. Its scan of two rows against all
centroids, `scan_pair`, is shared with Hamerly's sweep in `hamerly`, so both
pick the same centroid bit for bit. `nearest_from_products` and
`accumulate_rows` are the same two steps apart, for when the products come
from BLAS sgemm; `moments` computes row norms and shifted per-feature moments
for the tolerance. The kernels write into arrays they are given and allocate
nothing, so `core` can run them on disjoint blocks from several threads.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]

# reassoc lets LLVM vectorise the dot products; nnan/ninf are left out on
# purpose so comparisons against inf in the argmin stay exact.
_FASTMATH = {"reassoc", "contract", "nsz"}


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, boundscheck=False, inline="always")
def settle_row(
    i: int,
    x: F32,
    best: np.float32,
    bk: int,
    xnorm: F32,
    labels: I32,
    dist: F32,
    sums: F64,
    counts: I64,
) -> float:
    dd = xnorm[i] + best
    if dd < 0.0:  # cancellation in the expansion can dip below zero
        dd = np.float32(0.0)
    dist[i] = dd
    # The sums are kept from the previous sweep: only a row that changed
    # cluster moves its vector, and after the first few iterations few do.
    old = labels[i]
    if old != bk:
        labels[i] = bk
        counts[bk] += 1
        row = sums[bk]
        for j in range(x.shape[0]):
            row[j] += x[j]
        if old >= 0:
            counts[old] -= 1
            row = sums[old]
            for j in range(x.shape[0]):
                row[j] -= x[j]
    return float(dd)


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, boundscheck=False, inline="always")
def scan_pair(
    x: F32, y: F32, C: F32, cnorm: F32
) -> tuple[np.float32, int, np.float32, np.float32, int, np.float32]:
    """Best ||c||² - 2·x·c, its centroid and the second best, for rows x and y.

    Every full scan (Lloyd's and Hamerly's) goes through this one function, so
    both compute bit-identical values for a row and pick the same centroid.
    """
    d = x.shape[0]
    k = C.shape[0]
    k4 = k - k % 4
    two = np.float32(2.0)
    bx = by = sx = sy = np.float32(np.inf)
    kx = 0
    ky = 0
    # Two rows against four centroids at a time: eight independent dot
    # products, each loaded x or c value used twice or four times, which is
    # what keeps the FMA units busy (LLVM vectorises along j). A row's
    # arithmetic never depends on its partner, so an odd last row is paired
    # with itself and results do not depend on where blocks start.
    for c in range(0, k4, 4):
        c0 = C[c]
        c1 = C[c + 1]
        c2 = C[c + 2]
        c3 = C[c + 3]
        s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = np.float32(0.0)
        for j in range(d):
            a = x[j]
            b = y[j]
            u0 = c0[j]
            u1 = c1[j]
            u2 = c2[j]
            u3 = c3[j]
            s0 += a * u0
            s1 += a * u1
            s2 += a * u2
            s3 += a * u3
            t0 += b * u0
            t1 += b * u1
            t2 += b * u2
            t3 += b * u3
        # Strict < keeps the lowest index on ties, like argmin.
        for q, s, t in ((0, s0, t0), (1, s1, t1), (2, s2, t2), (3, s3, t3)):
            v = cnorm[c + q] - two * s
            if v < bx:
                sx = bx
                bx, kx = v, c + q
            elif v < sx:
                sx = v
            v = cnorm[c + q] - two * t
            if v < by:
                sy = by
                by, ky = v, c + q
            elif v < sy:
                sy = v
    for c in range(k4, k):
        cc = C[c]
        s0 = t0 = np.float32(0.0)
        for j in range(d):
            s0 += x[j] * cc[j]
            t0 += y[j] * cc[j]
        v = cnorm[c] - two * s0
        if v < bx:
            sx = bx
            bx, kx = v, c
        elif v < sx:
            sx = v
        v = cnorm[c] - two * t0
        if v < by:
            sy = by
            by, ky = v, c
        elif v < sy:
            sy = v
    return bx, kx, sx, by, ky, sy


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, boundscheck=False)
def fused_sweep(
    X: F32, xnorm: F32, C: F32, cnorm: F32, labels: I32, dist: F32, sums: F64, counts: I64
) -> float:
    n = X.shape[0]
    total = 0.0
    for i in range(0, n, 2):
        x = X[i]
        y = X[i + 1] if i + 1 < n else x
        bx, kx, _, by, ky, _ = scan_pair(x, y, C, cnorm)
        total += settle_row(i, x, bx, kx, xnorm, labels, dist, sums, counts)
        if i + 1 < n:
            total += settle_row(i + 1, y, by, ky, xnorm, labels, dist, sums, counts)
    return total


@numba.njit(nogil=True, cache=True, boundscheck=False)
def nearest_from_products(G: F32, cnorm: F32, xnorm: F32, labels: I32, dist: F32) -> float:
    n, k = G.shape
    two = np.float32(2.0)
    total = 0.0
    for i in range(n):
        best = np.float32(np.inf)
        bk = 0
        for c in range(k):
            v = cnorm[c] - two * G[i, c]
            if v < best:
                best, bk = v, c
        dd = xnorm[i] + best
        if dd < 0.0:
            dd = np.float32(0.0)
        labels[i] = bk
        dist[i] = dd
        total += dd
    return total


@numba.njit(nogil=True, cache=True, boundscheck=False)
def accumulate_rows(X: F32, labels: I32, sums: F64, counts: I64) -> None:
    n, d = X.shape
    for i in range(n):
        c = labels[i]
        counts[c] += 1
        row = sums[c]
        for j in range(d):
            row[j] += X[i, j]


@numba.njit(nogil=True, cache=True, boundscheck=False)
def moments(X: F32, shift: F64, xnorm: F64, s1: F64, s2: F64) -> int:
    n, d = X.shape
    bad = 0
    for i in range(n):
        sq = 0.0
        for j in range(d):
            v = np.float64(X[i, j])
            sq += v * v
            dv = v - shift[j]
            s1[j] += dv
            s2[j] += dv * dv
        # One inf or nan anywhere in the row makes its norm non-finite.
        if not np.isfinite(sq) or sq > 3.0e38:
            bad += 1
        xnorm[i] = sq
    return bad
