"""The k-means numerics on plain numpy arrays: no MPI, no I/O.

A Lloyd sweep (`Engine`) assigns every row to its nearest centroid with the
expansion ||x - c||² = ||x||² - 2·x·c + ||c||² in float32 (row norms computed
once; the products either by the fused kernel of `kernels`, which also adds the
row to its cluster's float64 sum while it is in L1, or by BLAS sgemm over
blocks of rows), on a few threads over fixed blocks, then the centroids move
to the means. By default (`hamerly`) a sweep skips the rows that distance
bounds prove cannot change cluster and reports the inertia from per-cluster
sums; the labels are those of the full sweep. Initialisation is k-means++
(scikit-learn's greedy variant, in `seeding`) on a sample; a cluster left empty takes the row farthest from its centroid;
iteration stops, as in scikit-learn, when the summed squared centroid shift is
at most `tol` times the mean per-feature variance (those update-step helpers
live in `update` and are re-exported here). Everything that must be
summed over all rows goes through a `Reducer`, which is the identity here and
an `Allreduce` in `distributed`, so one loop serves one process and P ranks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from vectorpipe_workloads.kmeans import hamerly, kernels
from vectorpipe_workloads.kmeans.kernels import F32, F64, I32, I64
from vectorpipe_workloads.kmeans.seeding import SAMPLE_MIN as SAMPLE_MIN
from vectorpipe_workloads.kmeans.seeding import SAMPLE_PER_CLUSTER as SAMPLE_PER_CLUSTER
from vectorpipe_workloads.kmeans.seeding import init_streams as init_streams
from vectorpipe_workloads.kmeans.seeding import kmeans_plusplus as kmeans_plusplus
from vectorpipe_workloads.kmeans.seeding import sample_indices as sample_indices
from vectorpipe_workloads.kmeans.seeding import sample_size as sample_size
from vectorpipe_workloads.kmeans.update import center_shift as center_shift
from vectorpipe_workloads.kmeans.update import farthest as farthest
from vectorpipe_workloads.kmeans.update import relocate_empty as relocate_empty
from vectorpipe_workloads.kmeans.update import tolerance as tolerance
from vectorpipe_workloads.kmeans.update import update_centroids as update_centroids

# "hamerly" skips rows that bounds prove cannot move (same labels as "fused");
# "fused" and "gemm" are plain Lloyd, kept for reference and benchmarks.
Method = Literal["hamerly", "fused", "gemm"]
T = TypeVar("T")

BLOCK_ROWS = 65536
GEMM_ROWS = 4096
# Each block keeps its own K×d float64 partial sums so that the result does not
# depend on how blocks are spread over threads; cap what those partials cost.
PARTIALS_BUDGET_BYTES = 64 << 20


def squared_norms(X: NDArray[Any]) -> F32:
    """||x||² per row, summed in float64 and stored as float32."""
    x = np.asarray(X, dtype=np.float64)
    norms: F64 = np.einsum("ij,ij->i", x, x)
    return norms.astype(np.float32)


def assign(
    X: F32, C: F32, xnorm: F32 | None = None, chunk_rows: int = BLOCK_ROWS
) -> tuple[I32, F32]:
    """Nearest centroid and squared distance per row, by BLAS sgemm over chunks of rows.

    The reference path: what `Engine(method="gemm")` does, without threads or sums.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    C = np.ascontiguousarray(C, dtype=np.float32)
    xn = squared_norms(X) if xnorm is None else xnorm
    cn = squared_norms(C)
    labels = np.empty(len(X), np.int32)
    dist = np.empty(len(X), np.float32)
    for lo in range(0, len(X), chunk_rows):
        hi = min(lo + chunk_rows, len(X))
        products = X[lo:hi] @ C.T
        kernels.nearest_from_products(products, cn, xn[lo:hi], labels[lo:hi], dist[lo:hi])
    return labels, dist


def accumulate(X: F32, labels: I32, k: int) -> tuple[F64, I64]:
    """Per-cluster float64 sums and counts of the rows with the given labels."""
    sums = np.zeros((k, X.shape[1]), np.float64)
    counts = np.zeros(k, np.int64)
    kernels.accumulate_rows(np.ascontiguousarray(X, dtype=np.float32), labels, sums, counts)
    return sums, counts


@dataclass(frozen=True)
class SweepResult:
    """What one pass over a rank's rows contributes: sums, counts and inertia."""

    sums: F64
    counts: I64
    inertia: float


class Engine:
    """A rank's rows with their norms, labels and distances, and the threads that sweep them.

    The rows are split into fixed blocks; each block has its own partial sums
    which are added in block order, so results are the same for any number of
    threads. Kernels release the GIL, so plain Python threads run them in
    parallel. With the fused kernel the partial sums live on from one sweep to
    the next and only rows that change cluster touch them.
    """

    def __init__(
        self, X: F32, threads: int = 1, method: Method = "hamerly", block_rows: int = BLOCK_ROWS
    ) -> None:
        if X.ndim != 2 or X.dtype != np.float32 or not X.flags.c_contiguous:
            raise ValueError("Engine needs a C-contiguous (n, d) float32 matrix")
        self.X = X
        self.n, self.dim = X.shape
        self.threads = max(1, threads)
        self.method = method
        self.block_rows = max(1, block_rows)
        self.xnorm: F32 | None = None  # set by moments(), which sweep() calls if needed
        self.xsq = np.zeros(self.n)  # the same norms in float64, for Hamerly's inertia
        self.labels = np.full(self.n, -1, np.int32)
        self._dist = np.zeros(self.n, np.float32)
        # Hamerly's state: the bounds, per-block Σ||x||² and the centroids the
        # bounds refer to; dist is refreshed on demand when rows were skipped.
        self._upper = np.zeros(self.n)
        self._lower = np.zeros(self.n)
        self._nsq = np.zeros((0, 0))
        self._last: F32 | None = None
        self._dist_stale = False
        self.scanned = 0  # rows fully scanned by the last sweep
        # Per-block sums and counts of the rows under their current labels; the
        # fused kernel updates them in place as rows change cluster.
        self._sums = np.zeros((0, 0, self.dim))
        self._counts = np.zeros((0, 0), np.int64)
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _map(self, fn: Callable[[int], T], count: int) -> list[T]:
        if self._pool is None or count < 2:
            return [fn(i) for i in range(count)]
        return list(self._pool.map(fn, range(count)))

    def _blocks(self, width: int) -> list[tuple[int, int]]:
        max_blocks = max(1, PARTIALS_BUDGET_BYTES // max(1, width * 8))
        size = max(self.block_rows, math.ceil(self.n / max_blocks))
        return [(lo, min(lo + size, self.n)) for lo in range(0, self.n, size)]

    def moments(self, shift: F64) -> tuple[F64, F64, int]:
        """Fill the row norms; return Σ(x - shift), Σ(x - shift)² per feature and bad rows.

        Shifting by an estimate of the mean (the init sample's) keeps the
        one-pass variance free of cancellation.
        """
        blocks = self._blocks(2 * self.dim)
        s1 = np.zeros((len(blocks), self.dim))
        s2 = np.zeros((len(blocks), self.dim))
        norms = np.empty(self.n, np.float64)
        shift = np.ascontiguousarray(shift, dtype=np.float64)

        def work(b: int) -> int:
            lo, hi = blocks[b]
            return int(kernels.moments(self.X[lo:hi], shift, norms[lo:hi], s1[b], s2[b]))

        bad = sum(self._map(work, len(blocks)))
        self.xnorm = norms.astype(np.float32)
        self.xsq = norms
        return s1.sum(axis=0), s2.sum(axis=0), bad

    def sweep(self, C: F32) -> SweepResult:
        """Assign every row to its nearest centroid of C; sums, counts and inertia of that."""
        if self.xnorm is None:
            self.moments(np.zeros(self.dim))
        assert self.xnorm is not None
        C = np.ascontiguousarray(C, dtype=np.float32)
        k = C.shape[0]
        cnorm = squared_norms(C)
        blocks = self._blocks(k * self.dim)
        if self.method == "gemm" or self._counts.shape != (len(blocks), k):
            self._sums = np.zeros((len(blocks), k, self.dim))
            self._counts = np.zeros((len(blocks), k), np.int64)
            self._nsq = np.zeros((len(blocks), k))
            self.labels.fill(-1)
        sums, counts = self._sums, self._counts
        X, xn, lab, dist = self.X, self.xnorm, self.labels, self._dist
        if self.method == "hamerly":
            return self._bounded(C, cnorm, blocks)
        self._dist_stale = False

        def fused(b: int) -> float:
            lo, hi = blocks[b]
            return float(
                kernels.fused_sweep(
                    X[lo:hi], xn[lo:hi], C, cnorm, lab[lo:hi], dist[lo:hi], sums[b], counts[b]
                )
            )

        def gemm(b: int) -> float:
            total = 0.0
            # Sub-blocks small enough that accumulating re-reads X from cache, not memory.
            for lo in range(blocks[b][0], blocks[b][1], GEMM_ROWS):
                hi = min(lo + GEMM_ROWS, blocks[b][1])
                products = X[lo:hi] @ C.T
                total += float(
                    kernels.nearest_from_products(
                        products, cnorm, xn[lo:hi], lab[lo:hi], dist[lo:hi]
                    )
                )
                kernels.accumulate_rows(X[lo:hi], lab[lo:hi], sums[b], counts[b])
            return total

        if self.method == "fused":
            inertia = self._map(fused, len(blocks))
        else:
            from threadpoolctl import threadpool_limits

            # `threads` is the CPU budget and our threads spend it; BLAS threads
            # on top would oversubscribe, and spin-wait at every small call.
            with threadpool_limits(limits=1, user_api="blas"):
                inertia = self._map(gemm, len(blocks))
        return SweepResult(sums.sum(axis=0), counts.sum(axis=0), float(sum(inertia)))

    def _bounded(self, C: F32, cnorm: F32, blocks: list[tuple[int, int]]) -> SweepResult:
        assert self.xnorm is not None
        prev = self._last
        if prev is None or prev.shape != C.shape or bool((self.labels < 0).any()):
            # No bounds yet: every row is scanned (label -1), which sets them.
            self.labels.fill(-1)
            self._sums.fill(0.0)
            self._counts.fill(0)
            self._nsq.fill(0.0)
            prev = C
        geometry = hamerly.centroid_geometry(prev, C)
        X, xn, xsq, lab, dist = self.X, self.xnorm, self.xsq, self.labels, self._dist
        up, low, sums, counts, nsq = self._upper, self._lower, self._sums, self._counts, self._nsq

        def work(b: int) -> int:
            lo, hi = blocks[b]
            return int(
                hamerly.bounded_sweep(
                    X[lo:hi], xn[lo:hi], xsq[lo:hi], C, cnorm, geometry, lab[lo:hi],
                    dist[lo:hi], up[lo:hi], low[lo:hi], sums[b], counts[b], nsq[b],
                )
            )  # fmt: skip

        self.scanned = sum(self._map(work, len(blocks)))
        self._last = C.copy()
        self._dist_stale = True
        total_sums, total_counts = sums.sum(axis=0), counts.sum(axis=0)
        inertia = hamerly.inertia_from_sums(C, total_sums, total_counts, nsq.sum(axis=0))
        return SweepResult(total_sums, total_counts, inertia)

    @property
    def dist(self) -> F32:
        """Squared distance of every row to its centroid in the last sweep."""
        if self._dist_stale and self._last is not None and self.xnorm is not None:
            C, xn, cnorm = self._last, self.xnorm, squared_norms(self._last)
            blocks = self._blocks(1)

            def work(b: int) -> None:
                lo, hi = blocks[b]
                hamerly.assigned_distances(
                    self.X[lo:hi], xn[lo:hi], C, cnorm, self.labels[lo:hi], self._dist[lo:hi]
                )

            self._map(work, len(blocks))
            self._dist_stale = False
        return self._dist


def warmup(dim: int = 3) -> None:
    """Compile (or load from numba's cache) every kernel now, so timings exclude the JIT."""
    X = np.ones((5, dim), np.float32)
    for method in ("hamerly", "fused"):
        with Engine(X, method=method) as e:
            e.moments(np.zeros(dim))
            e.sweep(X[:5])
            e.sweep(X[:5])
            e.dist  # noqa: B018 (the refresh compiles its kernel)
    labels, _ = assign(X, X[:2])
    accumulate(X, labels, 2)


class Reducer(Protocol):
    """How per-rank quantities become global ones."""

    def sum(self, buf: F64) -> F64:
        """Elementwise sum of buf over all ranks (every rank gets the result)."""
        ...

    def farthest(self, engine: Engine, m: int) -> tuple[F64, I64]:
        """The m rows farthest from their centroid over all ranks, and their labels."""
        ...


class LocalReducer:
    """One process holds every row."""

    def sum(self, buf: F64) -> F64:
        return buf

    def farthest(self, engine: Engine, m: int) -> tuple[F64, I64]:
        pos = farthest(engine.dist, np.arange(engine.n), m)
        return engine.X[pos].astype(np.float64), engine.labels[pos].astype(np.int64)


@dataclass(frozen=True)
class IterationStats:
    iteration: int  # 1-based
    inertia: float  # of the assignment this iteration made
    shift: float  # summed squared centroid move of this iteration's update
    empty: int  # clusters found empty and reseeded
    seconds: float


@dataclass
class LloydResult:
    centroids: F32
    sizes: I64  # rows per cluster in the final assignment
    inertia: list[float]  # inertia[i]: after i updates; the last is the final assignment's
    iterations: int
    converged: bool
    history: list[IterationStats] = field(default_factory=list)


def lloyd(
    engine: Engine,
    initial: F32,
    max_iterations: int,
    tol: float,
    reducer: Reducer | None = None,
    on_iteration: Callable[[IterationStats], None] | None = None,
) -> LloydResult:
    """Lloyd iterations from `initial` until the shift is <= tol (absolute) or max_iterations.

    After the loop the rows are assigned once more, to the final centroids, so
    `engine.labels`/`engine.dist`, the sizes and the last inertia describe them.
    """
    red: Reducer = reducer or LocalReducer()
    C = np.array(initial, dtype=np.float32, order="C")
    k, d = C.shape
    inertia: list[float] = []
    history: list[IterationStats] = []
    converged = False
    for it in range(1, max_iterations + 1):
        t0 = time.perf_counter()
        part = engine.sweep(C)
        # One buffer, so one collective per iteration.
        total = red.sum(np.concatenate([part.sums.ravel(), part.counts, [part.inertia]]))
        sums = total[: k * d].reshape(k, d)
        counts = np.rint(total[k * d : k * d + k]).astype(np.int64)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            points, labels = red.farthest(engine, int(empty.size))
            relocate_empty(sums, counts, empty.tolist(), points, labels.tolist())
        new = update_centroids(sums, counts, C)
        shift = center_shift(C, new)
        C = new
        inertia.append(float(total[-1]))
        stats = IterationStats(it, inertia[-1], shift, int(empty.size), time.perf_counter() - t0)
        history.append(stats)
        if on_iteration is not None:
            on_iteration(stats)
        if shift <= tol:
            converged = True
            break
    final = engine.sweep(C)
    total = red.sum(np.concatenate([final.counts, [final.inertia]]).astype(np.float64))
    inertia.append(float(total[-1]))
    return LloydResult(
        centroids=C,
        sizes=np.rint(total[:k]).astype(np.int64),
        inertia=inertia,
        iterations=len(history),
        converged=converged,
        history=history,
    )
