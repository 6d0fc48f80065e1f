"""The `vectorpipe` subcommands behind `cli`: `run`, `etl` and `report`, with what a person sees.

`run_command` drives `runner.run_pipeline` under rich progress bars (one per
stage) and prints the final summary table; `etl_command` is stage 1 alone with
plain progress lines (the RayJob entrypoint, no terminal); `report_command`
(re)writes a finished run's report. Kept apart from the runner so the runner
stays plain functions that tests and the RayJob entrypoint call without a terminal.
"""

from __future__ import annotations

from typing import Any

from vectorpipe_api.pipeline import PipelineDocument

STAGE_LABELS = {
    "profile": "stage 1 · count k-mers",
    "embed": "stage 1 · embed files",
    "shards": "stage 1 · write shards",
    "kmeans": "stage 2 · k-means iterations",
}


class ProgressBars:
    """One rich progress bar per stage, created when the stage first reports."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(STAGE_LABELS.get(stage, stage), total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


def run_command(doc: PipelineDocument, ranks: int | None, report: bool) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from vectorpipe_workloads.report.text import human_bytes
    from vectorpipe_workloads.runner import output_display, run_pipeline

    console = Console()
    console.print(
        f"[bold]VectorPipeline[/] {doc.name}: {doc.spec.input.uri} → {doc.spec.output.uri}"
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        summary = run_pipeline(doc, ranks=ranks, report=report, progress=ProgressBars(progress))

    m = summary.manifest
    metrics = summary.kmeans_metrics
    inertia = metrics.get("inertia")
    final_inertia = inertia[-1] if isinstance(inertia, list) and inertia else None
    table = Table(title=f"VectorPipeline {doc.name}", show_header=True)
    table.add_column("stage")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_row(
        "1 · Ray ETL",
        f"{m.rows:,} rows · {len(m.shards)} shards · {human_bytes(m.bytes)} · "
        f"{doc.spec.embedding.method} k={doc.spec.embedding.k} dim={m.dim}",
        f"{summary.etl_seconds:.1f}",
    )
    table.add_row(
        "2 · MPI k-means",
        f"{metrics.get('clusters')} clusters · {metrics.get('iterations')} iterations · "
        f"inertia {final_inertia:.4g} · {metrics.get('ranks')} ranks"
        if final_inertia is not None
        else "",
        f"{summary.kmeans_seconds:.1f}",
    )
    console.print(table)
    if m.seconds > 0:
        console.print(
            f"stage 1: {m.rows / m.seconds:,.0f} reads/s over {m.seconds:.1f} s of ETL "
            f"(+{summary.etl_seconds - m.seconds:.1f} s to start Ray)"
        )
    if metrics.get("ms_per_iteration") is not None:
        console.print(f"stage 2: {metrics['ms_per_iteration']} ms per Lloyd iteration")
    if summary.ari is not None and summary.nmi is not None:
        console.print(
            f"agreement with the true read sources: ARI {summary.ari:.3f} · NMI {summary.nmi:.3f}"
        )
    console.print(f"results: {output_display(summary.output)}")
    if summary.report_uri:
        console.print(f"report:  {output_display(summary.report_uri)}")
    return 0


def etl_command(doc: PipelineDocument) -> int:
    from vectorpipe_workloads.manifest import manifest_uri
    from vectorpipe_workloads.runner import run_stage1

    def log(stage: str, done: int, total: int) -> None:
        print(f"{STAGE_LABELS.get(stage, stage)}: {done}/{total}", flush=True)

    m = run_stage1(doc, log)
    print(
        f"stage 1 done: {m.rows} rows in {len(m.shards)} shards ({m.bytes} bytes), "
        f"manifest {manifest_uri(doc.spec.output.uri)}",
        flush=True,
    )
    return 0


def report_command(output: str, labels_path: str | None) -> int:
    from vectorpipe_workloads.report import write_report
    from vectorpipe_workloads.sampledata import load_labels
    from vectorpipe_workloads.storage import Store

    labels = load_labels(labels_path) if labels_path else None
    result = write_report(output, Store(), labels=labels)
    print(f"report: {result.uri}")
    return 0
