"""Lloyd's k-means over an MPI communicator, with results that do not depend on the rank count.

Rank r of P owns the contiguous global rows [r·N//P, (r+1)·N//P). Each
iteration sweeps the local rows and sums one packed float64 buffer (K×d sums,
K counts, the inertia) with a single `Allreduce`, so every rank computes the
same new centroids. Initialisation is a function of the seed alone: the seed
picks a global sample of row indices, the owners of those rows contribute them
with one `Allgatherv` in global-index order, and every rank runs the same
k-means++ starts (and, for several, the same sample Lloyd that picks one) on
the same sample. Reseeding an empty cluster takes the row farthest from its
centroid over all ranks (ties go to the lower global row index), so that too
is independent of P. The communicator is anything with
mpi4py's `Comm` interface; `MPI.COMM_SELF` runs the whole thing in one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vectorpipe_workloads.kmeans import core, seeding
from vectorpipe_workloads.kmeans.core import Method
from vectorpipe_workloads.kmeans.kernels import F32, F64, I32, I64


class Communicator(Protocol):
    """The part of mpi4py's `Comm` this package uses (its names, hence the noqa)."""

    def Get_rank(self) -> int: ...  # noqa: N802
    def Get_size(self) -> int: ...  # noqa: N802
    def Allreduce(self, sendbuf: Any, recvbuf: Any) -> None: ...  # noqa: N802
    def Allgatherv(self, sendbuf: Any, recvbuf: Any) -> None: ...  # noqa: N802
    def allgather(self, sendobj: Any) -> list[Any]: ...
    def bcast(self, obj: Any, root: int = 0) -> Any: ...
    def Isend(self, buf: Any, dest: int, tag: int = 0) -> Any: ...  # noqa: N802
    def Recv(self, buf: Any, source: int, tag: int = 0) -> None: ...  # noqa: N802
    def Barrier(self) -> None: ...  # noqa: N802


def rank_bounds(n_rows: int, ranks: int) -> list[tuple[int, int]]:
    """Global rows [lo, hi) of every rank: contiguous, sizes differ by at most one."""
    return [(r * n_rows // ranks, (r + 1) * n_rows // ranks) for r in range(ranks)]


class MPIReducer:
    """`core.Reducer` over a communicator, for a rank whose rows start at global row `offset`."""

    def __init__(self, comm: Communicator, offset: int) -> None:
        self.comm = comm
        self.offset = offset

    def sum(self, buf: F64) -> F64:
        send = np.ascontiguousarray(buf, dtype=np.float64)
        out = np.empty_like(send)
        self.comm.Allreduce(send, out)
        return out

    def farthest(self, engine: core.Engine, m: int) -> tuple[F64, I64]:
        # The global top m are among the union of every rank's local top m.
        pos = core.farthest(engine.dist, np.arange(engine.n) + self.offset, m)
        mine = (
            engine.dist[pos].astype(np.float64),
            pos.astype(np.int64) + self.offset,
            engine.labels[pos].astype(np.int64),
        )
        gathered = self.comm.allgather(mine)
        values = np.concatenate([g[0] for g in gathered])
        rows = np.concatenate([g[1] for g in gathered])
        labels = np.concatenate([g[2] for g in gathered])
        chosen = core.farthest(values, rows, m)
        # Owners fill in their rows; the sum hands every rank all of them.
        points = np.zeros((len(chosen), engine.dim), np.float64)
        for i, row in enumerate(rows[chosen]):
            local = int(row) - self.offset
            if 0 <= local < engine.n:
                points[i] = engine.X[local]
        points = self.sum(points.ravel()).reshape(len(chosen), engine.dim)
        return points, labels[chosen]


def gather_sample(comm: Communicator, X_local: F32, n_rows: int, indices: I64) -> F32:
    """Rows `indices` (sorted, global) on every rank, in index order, each sent once by its owner."""
    ranks, rank = comm.Get_size(), comm.Get_rank()
    bounds = rank_bounds(n_rows, ranks)
    dim = X_local.shape[1]
    edges = np.searchsorted(indices, [lo for lo, _ in bounds] + [n_rows])
    counts = np.diff(edges)
    lo = bounds[rank][0]
    mine = np.ascontiguousarray(X_local[indices[edges[rank] : edges[rank + 1]] - lo])
    out = np.empty((len(indices), dim), np.float32)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    comm.Allgatherv(mine, [out, ((counts * dim).tolist(), (displs * dim).tolist())])
    return out


@dataclass
class FitResult:
    centroids: F32
    sizes: I64  # global rows per cluster
    labels: I32  # this rank's rows
    distances: F32  # this rank's rows: squared distance to their centroid
    inertia: list[float]  # inertia[i] after i updates; the last is the final assignment's
    iterations: int
    converged: bool
    tolerance: float  # the absolute threshold on the centroid shift
    sample_rows: int
    history: list[core.IterationStats] = field(default_factory=list)
    init: seeding.InitInfo = field(default_factory=lambda: seeding.InitInfo(n_init=1))
    seconds: dict[str, float] = field(default_factory=dict)


class NonFiniteInputError(ValueError):
    """Some embedding holds NaN or infinity: every rank raises this together."""


def fit(
    comm: Communicator,
    X_local: F32,
    n_rows: int,
    clusters: int,
    max_iterations: int,
    tol: float,
    seed: int,
    threads: int = 1,
    method: Method = "hamerly",
    on_iteration: Callable[[core.IterationStats], None] | None = None,
    n_init: int = 1,
) -> FitResult:
    """Cluster the global matrix of which this rank holds its `rank_bounds` slice.

    Collective: every rank calls it with the same arguments except `X_local`.
    `n_init` k-means++ starts are tried on the init sample (`seeding.best_init`).
    """
    ranks, rank = comm.Get_size(), comm.Get_rank()
    lo, hi = rank_bounds(n_rows, ranks)[rank]
    if X_local.shape[0] != hi - lo:
        raise ValueError(f"rank {rank} holds {X_local.shape[0]} rows, expected {hi - lo}")
    if not 1 <= clusters <= n_rows:
        raise ValueError(f"need 1 <= clusters <= rows, got clusters={clusters}, rows={n_rows}")
    if n_init < 1:
        raise ValueError(f"n_init must be >= 1, got {n_init}")
    X = np.ascontiguousarray(X_local, dtype=np.float32)
    reducer = MPIReducer(comm, lo)

    t0 = time.perf_counter()
    core.warmup(X.shape[1])
    indices = core.sample_indices(n_rows, clusters, seed)
    sample = gather_sample(comm, X, n_rows, indices)
    with core.Engine(X, threads=threads, method=method) as engine:
        s1, s2, bad = engine.moments(sample.mean(axis=0, dtype=np.float64))
        dim = X.shape[1]
        moments = reducer.sum(np.concatenate([s1, s2, [float(bad)]]))
        if moments[-1] > 0:
            raise NonFiniteInputError(
                f"{int(moments[-1])} rows have NaN or infinite embedding values"
            )
        threshold = core.tolerance(n_rows, moments[:dim], moments[dim : 2 * dim], tol)
        # After the finiteness check: restarts on a NaN sample would run to their cap.
        _, pp_rng = core.init_streams(seed)
        initial, init_info = seeding.best_init(sample, clusters, pp_rng, n_init)
        t1 = time.perf_counter()
        result = core.lloyd(engine, initial, max_iterations, threshold, reducer, on_iteration)
        t2 = time.perf_counter()
    return FitResult(
        centroids=result.centroids,
        sizes=result.sizes,
        labels=engine.labels,
        distances=engine.dist,
        inertia=result.inertia,
        iterations=result.iterations,
        converged=result.converged,
        tolerance=threshold,
        sample_rows=len(indices),
        history=result.history,
        init=init_info,
        seconds={"init": t1 - t0, "iterate": t2 - t1},
    )
