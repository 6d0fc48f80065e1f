"""MPI child of bench.kmeans: `distributed.fit` on this rank's slice, fixed iterations.

Usage: ``mpirun -n P python -m bench.mpi_kmeans ROWS DIM K ITERS``. Every rank
builds only its slice of the benchmark matrix; rank 0 prints one JSON line
with the median seconds per Lloyd iteration (the Allreduce included).
"""

from __future__ import annotations

import json
import statistics
import sys


def main(argv: list[str]) -> int:
    from mpi4py import MPI

    from bench.matrix import rows
    from vectorpipe_workloads.kmeans.distributed import fit, rank_bounds

    n, dim, k, iters = (int(a) for a in argv[:4])
    comm = MPI.COMM_WORLD
    lo, hi = rank_bounds(n, comm.Get_size())[comm.Get_rank()]
    X = rows(n, dim, k, seed=11, lo=lo, hi=hi)
    # tol < 0: never "converged", so every run does exactly `iters` iterations.
    res = fit(comm, X, n, k, max_iterations=iters, tol=-1.0, seed=0, threads=1)
    if comm.Get_rank() == 0:
        per = [h.seconds for h in res.history]
        print(
            json.dumps(
                {
                    "ranks": comm.Get_size(),
                    "iterations": res.iterations,
                    "ms_per_iter": 1e3 * statistics.median(per),
                    "ms_per_iter_min": 1e3 * min(per),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
