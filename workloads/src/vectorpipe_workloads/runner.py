"""The embedded default: run a whole VectorPipeline on this machine, no Kubernetes.

Stage 1 runs on a local Ray started for the run (or the cluster at
`RAY_ADDRESS`), stage 2 with `mpirun -n <nodes × ntasksPerNode>` from Open MPI,
then the report is written next to the results. The same spec a user would
`kubectl apply` drives it, and the outputs follow the same contracts, so a
run here and a run on EKS + ParallelCluster are interchangeable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vectorpipe_api.pipeline import PipelineDocument, VectorPipelineSpec
from vectorpipe_workloads.manifest import Manifest, clustering_uri, kmeans_argv, manifest_uri
from vectorpipe_workloads.storage import S3Config, Store, is_s3, join, local_path

ITER_LINE = re.compile(r"iter\s+(\d+)")


class StageError(RuntimeError):
    """A stage failed; the message says which and why."""


@dataclass
class RunSummary:
    name: str
    output: str
    manifest: Manifest
    etl_seconds: float
    kmeans_seconds: float
    kmeans_metrics: dict[str, object] = field(default_factory=dict)
    report_uri: str | None = None
    ari: float | None = None
    nmi: float | None = None


def start_ray(num_cpus: int | None = None, attempts: int = 3) -> None:
    """Connect to RAY_ADDRESS if set, else start a private local Ray for this process.

    A loaded machine can make Ray's own agents miss their start-up deadline
    ("node timed out during startup"); that is transient, so a local start is
    retried a bounded number of times before giving up.
    """
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
        return
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            return
        except Exception as e:
            if "timed out during startup" not in str(e) or attempt == attempts:
                raise
            ray.shutdown()
            time.sleep(2.0 * attempt)


def run_stage1(doc: PipelineDocument, progress: Callable[[str, int, int], None] | None) -> Manifest:
    from vectorpipe_workloads.etl import run_etl

    start_ray()
    return run_etl(doc.spec, pipeline=doc.name, run=doc.run, progress=progress)


def mpirun_command(spec: VectorPipelineSpec, manifest: str, ranks: int) -> list[str]:
    """The stage-2 command line: Open MPI's mpirun, this Python, then `manifest.kmeans_argv`."""
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise StageError(
            "mpirun not found: install Open MPI (Debian: openmpi-bin) or run `make install`"
        )
    cmd = [mpirun, "-n", str(ranks), "--oversubscribe", "--bind-to", "none"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    return [*cmd, sys.executable, *kmeans_argv(spec, manifest)]


def run_stage2(
    spec: VectorPipelineSpec, ranks: int, on_iteration: Callable[[int], None] | None = None
) -> str:
    """Run the MPI k-means; stream its progress; raise StageError with its last words on failure."""
    cmd = mpirun_command(spec, manifest_uri(spec.output.uri), ranks)
    env = dict(os.environ, OMPI_MCA_btl="self,vader,tcp", PYTHONUNBUFFERED="1")
    tail: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-40:], line.rstrip()]
            m = ITER_LINE.search(line)
            if m and on_iteration:
                on_iteration(int(m.group(1)))
        code = proc.wait()
    if code != 0:
        raise StageError(f"stage 2 (mpirun k-means) exited {code}:\n" + "\n".join(tail[-15:]))
    return "\n".join(tail)


def find_labels(spec: VectorPipelineSpec) -> str | None:
    """Known read sources for the demo: `labels.tsv.gz` beside local input files."""
    if is_s3(spec.input.uri):
        return None
    base = local_path(spec.input.uri)
    folder = base if base.is_dir() else base.parent
    candidate = folder / "labels.tsv.gz"
    return str(candidate) if candidate.exists() else None


def load_metrics(store: Store, output: str) -> dict[str, object]:
    import json

    data: dict[str, object] = json.loads(store.read_bytes(join(output, "metrics.json")))
    return data


def run_pipeline(
    doc: PipelineDocument,
    *,
    ranks: int | None = None,
    report: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> RunSummary:
    """Stage 1, stage 2, report; each stage's failure stops the run with a StageError."""
    spec = doc.spec
    store = Store(S3Config.from_env(spec.s3.endpoint_url, spec.s3.region))
    t0 = time.perf_counter()
    manifest = run_stage1(doc, progress)
    t1 = time.perf_counter()
    n_ranks = ranks or spec.hpc.slurm.ranks
    max_iter = spec.hpc.app.max_iterations
    run_stage2(spec, n_ranks, (lambda i: progress("kmeans", i, max_iter)) if progress else None)
    t2 = time.perf_counter()
    summary = RunSummary(
        name=doc.name,
        output=spec.output.uri,
        manifest=manifest,
        etl_seconds=t1 - t0,
        kmeans_seconds=t2 - t1,
        kmeans_metrics=load_metrics(store, clustering_uri(spec.output.uri)),
    )
    if report:
        from vectorpipe_workloads.report import write_report
        from vectorpipe_workloads.sampledata import load_labels

        labels_path = find_labels(spec)
        labels = load_labels(labels_path) if labels_path else None
        result = write_report(spec.output.uri, store, labels=labels, title=doc.name)
        summary.report_uri, summary.ari, summary.nmi = result.uri, result.ari, result.nmi
    return summary


def output_display(uri: str) -> str:
    return uri if is_s3(uri) else str(Path(local_path(uri)))
