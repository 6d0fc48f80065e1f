"""Shared pieces of the benchmark harness: run scales, timing and the machine record.

A `Scale` fixes every size the harness uses, so `small` (CI: a few minutes)
and `full` (`make bench`) run the same code on different amounts of data.
Timings are best-of-N wall-clock seconds, because on a shared machine the
minimum is the figure least polluted by other tenants; the load average at
the start and end of the run is recorded next to them for the same reason.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class Scale:
    """Every size a run uses."""

    name: str
    stage1_reads: int  # reads in the FASTQ file the stage-1 throughputs use
    seed_reads: int  # reads the (slow) seed-style baseline embeds
    ksweep_reads: int  # reads per k in the k = 2..8 sweep
    ray_files: int  # input files for the Ray 1-vs-2-workers run
    ray_reads_per_file: int
    kmeans_rows: int
    kmeans_dim: int
    kmeans_k: int
    kmeans_iters: int
    shard_rows: int
    random_rows: int  # rows fetched by the random-access test
    pipelines: int  # VectorPipelines created at once on the API server
    slurm_submits: int
    quality_short: int  # 150 bp reads per genome
    quality_long: int  # 1 kb reads per genome
    repeats: int  # best-of for the short timings


SCALES: dict[str, Scale] = {
    "small": Scale(
        name="small",
        stage1_reads=20_000,
        seed_reads=1_000,
        ksweep_reads=2_000,
        ray_files=2,
        ray_reads_per_file=5_000,
        kmeans_rows=50_000,
        kmeans_dim=136,
        kmeans_k=20,
        kmeans_iters=3,
        shard_rows=20_000,
        random_rows=100,
        pipelines=10,
        slurm_submits=3,
        quality_short=300,
        quality_long=100,
        repeats=1,
    ),
    "full": Scale(
        name="full",
        stage1_reads=400_000,
        seed_reads=10_000,
        ksweep_reads=40_000,
        ray_files=4,
        ray_reads_per_file=100_000,
        kmeans_rows=1_000_000,
        kmeans_dim=136,
        kmeans_k=20,
        kmeans_iters=10,
        shard_rows=400_000,
        random_rows=1_000,
        pipelines=100,
        slurm_submits=20,
        quality_short=3_000,
        quality_long=1_000,
        repeats=3,
    ),
}


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """The shortest of `repeats` wall-clock runs of fn, in seconds."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, as numpy's default."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def blas_info() -> list[Json]:
    """What threadpoolctl sees: which BLAS/OpenMP libraries, kernels and thread counts."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "architecture", "num_threads", "prefix")
    return [{k: lib.get(k) for k in keep} for lib in threadpool_info()]


def machine(scale: Scale) -> Json:
    """The machine record: cores, CPU, BLAS kernel, OPENBLAS_CORETYPE, load, date."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = blas_info()
    openblas = [b for b in blas if b["internal_api"] == "openblas"]
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "scale": scale.name,
        "cores": os.cpu_count() or 1,
        "cpu": model,
        "python": platform.python_version(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "blas_kernel": openblas[0]["architecture"] if openblas else "none",
        "blas": blas,
        "load_average_start": list(os.getloadavg()),
        "scale_params": asdict(scale),
    }


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
