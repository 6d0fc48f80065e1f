"""`write_report`: read a finished run and write `<output>/report/` (index.html and its PNGs).

It reads the run the way stage 2 does, through the manifest, plus what the
k-means program wrote in `<output>/clustering/`, draws the plots, renders the
page and writes everything through `Store`, so an s3:// run gets its report in
the bucket. index.html is written last, so once it exists its PNGs do too.
"""

from __future__ import annotations

from vectorpipe_workloads.manifest import clustering_uri, read_manifest
from vectorpipe_workloads.report.analysis import pca_2d, sample_vectors, score
from vectorpipe_workloads.report.data import (
    REPORT_DIR,
    ReportResult,
    Scores,
    assignment_parts,
    read_assignments,
    read_centroids,
    read_metrics,
)
from vectorpipe_workloads.report.page import render_html
from vectorpipe_workloads.report.plots import (
    cluster_colours,
    plot_inertia,
    plot_projection,
    plot_sizes,
)
from vectorpipe_workloads.storage import Store, join


def write_report(
    output_uri: str,
    store: Store,
    *,
    labels: dict[str, str] | None = None,
    sample_rows: int = 5000,
    title: str = "",
    seed: int = 0,
) -> ReportResult:
    """Read a finished run under `output_uri` and write `<output>/report/` (index.html + PNGs)."""
    manifest = read_manifest(store, output_uri)
    clustering = clustering_uri(output_uri)
    centroids = read_centroids(store, clustering)
    metrics = read_metrics(store, clustering)
    parts = assignment_parts(store, clustering)
    assignments = read_assignments(store, parts)

    notes: list[str] = []
    assigned_rows = sum(t.num_rows for t in assignments)
    if not assignments:
        notes.append("No assignments found; the projection colours rows by nearest centroid.")
    elif assigned_rows != manifest.rows:
        notes.append(f"Assignments cover {assigned_rows:,} of {manifest.rows:,} rows.")
    if int(centroids.sizes.sum()) != manifest.rows:
        notes.append(
            f"Cluster sizes add up to {int(centroids.sizes.sum()):,}, "
            f"the manifest lists {manifest.rows:,} rows."
        )

    colours = cluster_colours(len(centroids.ids))
    sample = sample_vectors(store, output_uri, manifest, sample_rows, seed, assignments, centroids)
    points, centres, explained = pca_2d(sample.vectors, centroids.vectors)
    truth = [labels.get(r) for r in sample.read_ids] if labels else None

    scores: Scores | None = None
    if labels is not None:
        scores = score(labels, assignments, centroids.ids)

    images = {
        "cluster_sizes.png": plot_sizes(centroids, colours),
        "projection.png": plot_projection(
            points, sample.clusters, centres, centroids, colours, explained, truth
        ),
        "inertia.png": plot_inertia(
            [float(v) for v in metrics.get("inertia", []) or []],
            metrics.get("converged"),
            iterations if isinstance(iterations := metrics.get("iterations"), int) else None,
        ),
    }
    page = render_html(
        title=title or f"VectorPipe run · {manifest.pipeline or output_uri.rstrip('/')}",
        output_uri=output_uri,
        manifest=manifest,
        metrics=metrics,
        centroids=centroids,
        colours=colours,
        scores=scores,
        images=images,
        sampled=len(points),
        notes=notes,
    )
    report = join(output_uri, REPORT_DIR)
    files = []
    for name, data in images.items():
        uri = join(report, name)
        store.write_bytes(uri, data)
        files.append(uri)
    index = join(report, "index.html")
    # index.html last: once it is there, the PNGs it stands for are too.
    store.write_bytes(index, page.encode())
    files.append(index)
    return ReportResult(
        uri=index,
        files=files,
        ari=scores.ari if scores else None,
        nmi=scores.nmi if scores else None,
        purity=scores.purity if scores else None,
        labelled_rows=scores.labelled if scores else 0,
    )
