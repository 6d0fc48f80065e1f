"""Stage-2 speed: VectorPipe's Lloyd sweep against the memory floor, scikit-learn and faiss.

All on the same n × 136 float32 matrix (bench.matrix), K clusters, the same
k-means++ initial centroids and a fixed number of iterations (tolerance
below zero, so nobody stops early except scikit-learn's "labels stopped
changing" rule, which `n_iter_` accounts for). The memory floor is numpy
streaming the matrix once (`X.sum()`, one thread). VectorPipe runs with one
thread and with one per core (the k-means CLI's default); scikit-learn and
faiss use every core through their own OpenMP pools, each under the BLAS
kernel threadpoolctl reports. MPI runs `mpirun -n 1` and `-n 2` of
bench.mpi_kmeans (one thread per rank) for the parallel efficiency.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import Json, Scale, best_of, log
from bench.matrix import rows
from vectorpipe_workloads.kmeans import core

REPO = Path(__file__).resolve().parents[1]


def ours(
    X: np.ndarray, initial: np.ndarray, iters: int, threads: int
) -> tuple[float, float, float]:
    """ms per Lloyd iteration of core.lloyd (sweep + centroid update): the mean over all
    `iters` iterations, the first one alone, and the median.

    The default engine (Hamerly's bounds) gives Lloyd's assignments but skips the
    distances its bounds rule out, so an iteration after the clusters settle costs a
    fraction of the first, full one. The mean over the whole run is the fair figure
    against scikit-learn's total time / iterations; the first iteration is what a
    full pass over the matrix costs.
    """
    with core.Engine(X, threads=threads) as engine:
        engine.moments(np.zeros(X.shape[1]))
        res = core.lloyd(engine, initial, iters, tol=-1.0)
    seconds = [h.seconds for h in res.history]
    return 1e3 * statistics.fmean(seconds), 1e3 * seconds[0], 1e3 * statistics.median(seconds)


def sklearn_ms(X: np.ndarray, initial: np.ndarray, iters: int) -> float:
    from sklearn.cluster import KMeans

    km = KMeans(len(initial), init=initial, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd")
    t0 = time.perf_counter()
    km.fit(X)
    return 1e3 * (time.perf_counter() - t0) / max(1, int(km.n_iter_))


def faiss_ms(X: np.ndarray, initial: np.ndarray, iters: int) -> float:
    import faiss

    k, d = initial.shape
    # max_points_per_centroid = n: train on every row, no subsampling.
    km = faiss.Kmeans(d, k, niter=iters, max_points_per_centroid=len(X), seed=0, verbose=False)
    t0 = time.perf_counter()
    km.train(X, init_centroids=initial)
    return 1e3 * (time.perf_counter() - t0) / iters


def mpi(scale: Scale, ranks: int) -> Json:
    cmd = [
        shutil.which("mpirun") or "mpirun",
        "-n",
        str(ranks),
        "--oversubscribe",
        "--bind-to",
        "none",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [sys.executable, "-m", "bench.mpi_kmeans"]
    cmd += [
        str(v) for v in (scale.kmeans_rows, scale.kmeans_dim, scale.kmeans_k, scale.kmeans_iters)
    ]
    env = dict(os.environ, OMPI_MCA_btl="self,vader,tcp", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"mpirun -n {ranks} failed: {proc.stderr[-3000:]}")
    out: Json = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def run(scale: Scale) -> Json:
    n, d, k, iters = scale.kmeans_rows, scale.kmeans_dim, scale.kmeans_k, scale.kmeans_iters
    log(f"k-means: building the {n} x {d} matrix")
    X = rows(n, d, k, seed=11)
    initial = core.kmeans_plusplus(X[core.sample_indices(n, k, 0)], k, 0)
    core.warmup(d)
    cores = os.cpu_count() or 1
    log("k-means: memory floor, VectorPipe 1 thread and all cores")
    floor_ms = 1e3 * best_of(lambda: X.sum(), max(3, scale.repeats))
    one, _, _ = ours(X, initial, iters, 1)
    alln, first, median = ours(X, initial, iters, cores)
    log("k-means: scikit-learn and faiss")
    sk = sklearn_ms(X, initial, iters)
    fa = faiss_ms(X, initial, iters)
    floor_after = 1e3 * best_of(lambda: X.sum(), max(3, scale.repeats))
    log("k-means: mpirun -n 1 and -n 2")
    r1, r2 = mpi(scale, 1), mpi(scale, 2)
    return {
        "rows": n,
        "dim": d,
        "clusters": k,
        "iterations": iters,
        "memory_floor_ms": min(floor_ms, floor_after),
        "kmeans_ms_per_iter": alln,
        "kmeans_first_iter_ms": first,
        "kmeans_median_ms_per_iter": median,
        "kmeans_threads": cores,
        "kmeans_1thread_ms_per_iter": one,
        "sklearn_ms_per_iter": sk,
        "faiss_ms_per_iter": fa,
        "kmeans_over_memory_floor": alln / min(floor_ms, floor_after),
        "kmeans_1thread_over_memory_floor": one / min(floor_ms, floor_after),
        "sklearn_over_kmeans": sk / alln,
        "mpi": {"1": r1, "2": r2},
        "mpi_parallel_efficiency": r1["ms_per_iter"] / (2 * r2["ms_per_iter"]),
    }
