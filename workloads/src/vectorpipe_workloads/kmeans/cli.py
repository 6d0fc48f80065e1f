"""Command line of stage 2: `mpirun -n P python -m vectorpipe_workloads.kmeans ...`.

Every rank parses the same arguments; rank 0 reads the manifest and
broadcasts it, each rank reads its own rows, `distributed.fit` clusters them,
and `shard_io` writes the contract with `_SUCCESS` last. Rank 0 prints one line per
iteration to stderr (`iter 3 inertia=... shift=...`), which the local runner
parses for its progress bar. Problems a user can fix (no manifest, an
unreadable shard, more clusters than rows, a failed write) are detected on
whichever rank meets them, agreed on by all ranks with one small collective,
reported once by rank 0, and end every rank with the same non-zero exit code;
`comm.Abort` is kept for the unexpected, where other ranks may be stuck in a
collective and could not otherwise be released.

Exit codes: 0 success, 1 unexpected error, 2 bad input or arguments, 3 an
output could not be written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from vectorpipe_workloads.storage import S3Config, Store

EXIT_OK, EXIT_UNEXPECTED, EXIT_INPUT, EXIT_OUTPUT = 0, 1, 2, 3
T = TypeVar("T")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vectorpipe_workloads.kmeans",
        description="Distributed k-means (Lloyd, k-means++ init) over the shards of a "
        "stage-1 manifest. Run under mpirun; one process also works.",
    )
    p.add_argument(
        "--manifest", required=True, help="_manifest.json URI, or the stage-1 output URI"
    )
    p.add_argument("--output", required=True, help="where to write the results (path or s3://)")
    p.add_argument("--clusters", type=_positive, required=True, help="K")
    p.add_argument("--max-iterations", type=_positive, default=100)
    p.add_argument(
        "--tolerance",
        type=_non_negative_float,
        default=1e-4,
        help="stop when the summed squared centroid shift <= tolerance x mean feature variance",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument(
        "--n-init",
        type=_positive,
        default=1,
        help="k-means++ starts tried on the init sample; the one whose Lloyd run on the "
        "sample ends with the lowest inertia seeds the full run",
    )
    p.add_argument(
        "--csv",
        action="store_true",
        help="also write clustering_results_rank_NNNN.csv and cluster_centroids.csv",
    )
    p.add_argument("--s3-endpoint-url", default=None)
    p.add_argument("--s3-region", default=None)
    p.add_argument(
        "--threads",
        type=_non_negative_int,
        default=0,
        help="threads per rank; 0: the rank's CPUs divided among the ranks on its node",
    )
    p.add_argument(
        "--method", choices=["hamerly", "fused", "gemm"], default="hamerly", help=argparse.SUPPRESS
    )
    return p


def default_threads(comm: Any) -> int:
    """CPUs this rank may use: its affinity, shared fairly with the other ranks on the node."""
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    on_node = int(node.Get_size())
    node.Free()
    allowed = len(os.sched_getaffinity(0))
    return max(1, min(allowed, (os.cpu_count() or allowed) // on_node))


def collective(comm: Any, action: Callable[[], T]) -> tuple[T | None, list[str]]:
    """Run a step that may fail on some ranks; every rank learns every rank's error."""
    value: T | None = None
    error: str | None = None
    try:
        value = action()
    except Exception as e:
        from vectorpipe_workloads.kmeans.shard_io import InputError

        error = str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
    errors = [e for e in comm.allgather(error) if e]
    return value, errors


class Reporter:
    """Rank 0's voice on stderr; the other ranks stay quiet."""

    def __init__(self, rank: int) -> None:
        self.loud = rank == 0

    def __call__(self, message: str) -> None:
        if self.loud:
            print(message, file=sys.stderr, flush=True)

    def errors(self, errors: Sequence[str]) -> None:
        for e in dict.fromkeys(errors):  # one line per distinct error, in rank order
            self(f"error: {e}")


def run(comm: Any, args: argparse.Namespace) -> int:
    """The whole stage on this rank; collective, returns the exit code."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from vectorpipe_workloads.kmeans import distributed, shard_io

    t_start = time.perf_counter()
    rank, ranks = comm.Get_rank(), comm.Get_size()
    say = Reporter(rank)
    store = Store(S3Config.from_env(args.s3_endpoint_url, args.s3_region))

    found: shard_io.Dataset | str
    if rank == 0:
        try:
            found = shard_io.open_dataset(store, args.manifest)
        except shard_io.InputError as e:
            found = str(e)
    found = comm.bcast(found if rank == 0 else None)
    if isinstance(found, str):
        say(f"error: {found}")
        return EXIT_INPUT
    ds: shard_io.Dataset = found
    if args.clusters > ds.rows:
        say(
            f"error: --clusters {args.clusters} is more than the {ds.rows} rows in {ds.manifest_uri}"
        )
        return EXIT_INPUT
    _, errors = collective(
        comm, lambda: shard_io.clear_success(store, args.output) if rank == 0 else None
    )
    if errors:
        say.errors(errors)
        return EXIT_OUTPUT

    lo, hi = distributed.rank_bounds(ds.rows, ranks)[rank]
    X, errors = collective(comm, lambda: shard_io.read_rows(store, ds, lo, hi))
    if errors or X is None:
        say.errors(errors)
        return EXIT_INPUT
    t_read = time.perf_counter()
    threads = args.threads or default_threads(comm)
    say(
        f"kmeans: {ds.rows} rows x {ds.dim} dims, {args.clusters} clusters, "
        f"{ranks} ranks x {threads} threads, seed {args.seed}, {args.n_init} k-means++ starts"
    )

    def progress(s: Any) -> None:
        say(
            f"iter {s.iteration} inertia={s.inertia:.6g} shift={s.shift:.3e} ms={s.seconds * 1e3:.1f}"
        )

    with threadpool_limits(limits=threads, user_api="blas"):
        blas = [
            {k: v for k, v in lib.items() if k != "filepath"}
            for lib in threadpool_info()
            if lib.get("user_api") == "blas"
        ]
        try:
            result = distributed.fit(
                comm, X, ds.rows, args.clusters, args.max_iterations, args.tolerance,
                args.seed, threads=threads, method=args.method, on_iteration=progress,
                n_init=args.n_init,
            )  # fmt: skip
        except distributed.NonFiniteInputError as e:
            say(f"error: {e} in {ds.manifest_uri}")
            return EXIT_INPUT

    t_write = time.perf_counter()
    mine = shard_io.exchange_assignments(comm, ds, result.labels, result.distances)

    def write_rank_outputs() -> None:
        shard_io.write_assignments(store, args.output, ds, mine)
        if args.csv:
            ids = shard_io.read_ids(store, ds, lo, hi)
            shard_io.write_rank_csv(store, args.output, rank, ids, result.labels)

    _, errors = collective(comm, write_rank_outputs)
    if errors:
        say.errors(errors)
        return EXIT_OUTPUT
    phases = {"read": t_read - t_start, **result.seconds, "write": time.perf_counter() - t_write}
    slowest = {k: max(p[k] for p in comm.allgather(phases)) for k in phases}

    def write_summary() -> None:
        if rank != 0:
            return
        shard_io.write_centroids(store, args.output, result.centroids, result.sizes)
        if args.csv:
            shard_io.write_centroids_csv(store, args.output, result.centroids, result.sizes)
        slowest["write"] = max(slowest["write"], time.perf_counter() - t_write)
        slowest["total"] = time.perf_counter() - t_start
        shard_io.write_metrics(
            store, args.output, metrics(args, ds, result, ranks, threads, slowest, blas)
        )

    _, errors = collective(comm, write_summary)
    if errors:
        say.errors(errors)
        return EXIT_OUTPUT
    comm.Barrier()  # every part is in place before the marker
    if rank == 0:
        try:
            shard_io.write_success(store, args.output)
        except Exception as e:
            say(f"error: cannot write {shard_io.SUCCESS_NAME}: {e}")
            return EXIT_OUTPUT
        say(
            f"done: {result.iterations} iterations, converged={result.converged}, "
            f"inertia={result.inertia[-1]:.6g}, {time.perf_counter() - t_start:.2f} s -> {args.output}"
        )
    return EXIT_OK


def metrics(
    args: argparse.Namespace,
    ds: Any,
    result: Any,
    ranks: int,
    threads: int,
    seconds: dict[str, float],
    blas: list[dict[str, Any]],
) -> dict[str, Any]:
    """`metrics.json`: what ran, how it converged, and where the time went."""
    per_iter = [s.seconds for s in result.history]
    ms = 1e3 * sum(per_iter) / len(per_iter) if per_iter else 0.0
    return {
        "method": "k-means (Lloyd, k-means++ init)"
        if args.n_init == 1
        else f"k-means (Lloyd, best of {args.n_init} k-means++ starts)",
        "engine": args.method,
        "manifest": ds.manifest_uri,
        "output": args.output,
        "rows": ds.rows,
        "dim": ds.dim,
        "clusters": args.clusters,
        "seed": args.seed,
        "max_iterations": args.max_iterations,
        "tolerance": args.tolerance,
        "tolerance_absolute": result.tolerance,
        "iterations": result.iterations,
        "converged": result.converged,
        "inertia": result.inertia,
        "center_shift": [s.shift for s in result.history],
        "empty_clusters_reseeded": sum(s.empty for s in result.history),
        "sample_rows": result.sample_rows,
        "n_init": result.init.n_init,
        "init_start": result.init.chosen,
        "init_sample_inertia": result.init.inertias,
        "init_sample_iterations": result.init.iterations,
        "ranks": ranks,
        "threads_per_rank": threads,
        "seconds": {k: round(v, 6) for k, v in seconds.items()},
        "ms_per_iteration": round(ms, 3),
        "ms_per_iteration_each": [round(1e3 * s, 3) for s in per_iter],
        "blas": blas,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        return run(comm, args)
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
        if comm.Get_size() > 1:
            # Other ranks may be waiting in a collective this rank will never join.
            comm.Abort(EXIT_UNEXPECTED)
        return EXIT_UNEXPECTED
