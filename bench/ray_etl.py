"""Child process of bench.stage1: the real `run_etl` on a private local Ray with N CPUs.

Usage: ``python -m bench.ray_etl INPUT_DIR CPUS [START_ATTEMPTS]``. Prints one JSON line with
the reads, the ETL's own seconds (Ray start excluded, as the product's
summary reports it) and reads/s. The output goes to a temp dir removed after.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time


def main(argv: list[str]) -> int:
    from vectorpipe_workloads.etl import run_etl
    from vectorpipe_workloads.pipeline_file import parse_document
    from vectorpipe_workloads.runner import start_ray

    directory, cpus = argv[0], int(argv[1])
    attempts = int(argv[2]) if len(argv) > 2 else 3
    with tempfile.TemporaryDirectory(prefix="vp-bench-ray-") as out:
        doc = parse_document(
            {
                "apiVersion": "vectorpipe.io/v1alpha1",
                "kind": "VectorPipeline",
                "metadata": {"name": "bench"},
                "spec": {
                    "input": {"uri": directory.rstrip("/") + "/"},
                    "embedding": {"method": "kmer", "k": 4, "canonical": True},
                    "output": {"uri": out + "/", "shards": 4},
                },
            }
        )
        t0 = time.perf_counter()
        start_ray(num_cpus=cpus, attempts=attempts)
        started = time.perf_counter() - t0
        import ray

        # One warm-up run so every worker has compiled (or loaded) the kernels.
        run_etl(doc.spec, pipeline="bench")
        t1 = time.perf_counter()
        manifest = run_etl(doc.spec, pipeline="bench")
        seconds = time.perf_counter() - t1
        ray.shutdown()
    print(
        json.dumps(
            {
                "cpus": cpus,
                "reads": manifest.rows,
                "seconds": seconds,
                "reads_per_s": manifest.rows / seconds,
                "ray_start_s": started,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
