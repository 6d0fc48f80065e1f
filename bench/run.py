"""`python -m bench.run --mode full|small|quality [--out DIR]`: run the benchmarks, write the page.

`full` is `make bench` (writes docs/benchmarks.md, docs/benchmarks.json and
docs/benchmarks/*.png, about 20 minutes on two shared cores); `small` is the
same harness on small inputs for CI (`make bench-small`, a few minutes);
`quality` runs only the clustering-quality part and prints its table. The
sections run one after the other in this process (Ray and MPI in children),
so nothing overlaps and every number comes from this one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import k8s, kmeans, plots, quality, report, shards, stage1
from bench.common import SCALES, Json, log, machine
from bench.data import short_reads

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = {
    "full": REPO / "docs",
    "small": REPO / "build" / "bench-small",
    "quality": REPO / "build" / "quality",
}


def headline(r: Json) -> Json:
    s1, km, ops, q = r["stage1"], r["kmeans"], r["ops"], r["quality"]
    return {
        "etl_reads_per_s": s1["etl_reads_per_s"],
        "parse_only_reads_per_s": s1["parse_only_reads_per_s"],
        "seed_baseline_reads_per_s": s1["seed_baseline_reads_per_s"],
        "kmeans_ms_per_iter": km["kmeans_ms_per_iter"],
        "memory_floor_ms": km["memory_floor_ms"],
        "sklearn_ms_per_iter": km["sklearn_ms_per_iter"],
        "faiss_ms_per_iter": km["faiss_ms_per_iter"],
        "operator_p50_s": ops["operator_p50_s"],
        "operator_p99_s": ops["operator_p99_s"],
        "operator_rss_mb": ops["operator_rss_mb"],
        "ari_short": q["ari_short"],
        "ari_long": q["ari_long"],
    }


def run_all(mode: str, out: Path) -> Json:
    scale = SCALES[mode]
    started = time.perf_counter()
    r: Json = {"machine": machine(scale)}
    with tempfile.TemporaryDirectory(prefix="vp-bench-") as tmp:
        work = Path(tmp)
        log("simulating the ART read pool")
        pool = short_reads(max(1000, scale.stage1_reads // 100), seed=5)
        r["stage1"] = stage1.run(scale, pool, work / "stage1")
        r["stage1"]["reads"] = scale.stage1_reads
        r["kmeans"] = kmeans.run(scale)
        r["shards"] = shards.run(scale, pool, work / "shards")
        r["ops"] = {**k8s.slurm(scale), **k8s.operator(scale, work / "k8s")}
        r["quality"] = quality.run(scale)
    r["machine"]["load_average_end"] = list(os.getloadavg())
    r["seconds"] = time.perf_counter() - started
    r["headline"] = headline(r)
    # The keys the issue asks for sit at the top level too, next to the machine.
    result: Json = {
        **r["headline"],
        "cores": r["machine"]["cores"],
        "blas_kernel": r["machine"]["blas_kernel"],
        "openblas_coretype": r["machine"]["openblas_coretype"],
        "load_average_start": r["machine"]["load_average_start"],
        "date": r["machine"]["date"],
        **r,
    }
    write(result, out)
    return result


def write(r: Json, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    bad = [k for k in report.HEADLINE_KEYS if not math.isfinite(float(r[k]))]
    if bad:
        raise RuntimeError(f"non-finite headline numbers: {bad}")
    (out / "benchmarks.json").write_text(json.dumps(r, indent=1, sort_keys=False) + "\n")
    images = plots.plots(r, out / "benchmarks")
    (out / "benchmarks.md").write_text(report.render(r, images, "benchmarks"))
    log(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks.json'}")


def run_quality(out: Path) -> Json:
    q = quality.run(SCALES["full"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(q, indent=1) + "\n")
    text = "\n".join(report.quality_section(q))
    (out / "quality.md").write_text(text + "\n")
    print(text)
    return q


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--mode", choices=["full", "small", "quality"], default="small")
    p.add_argument("--out", type=Path, default=None, help="output directory")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="re-render benchmarks.md and the plots from OUT/benchmarks.json (no measuring)",
    )
    args = p.parse_args(argv)
    out = args.out or DEFAULT_OUT[args.mode]
    if args.render_only:
        write(json.loads((out / "benchmarks.json").read_text()), out)
    elif args.mode == "quality":
        run_quality(out)
    else:
        run_all(args.mode, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
