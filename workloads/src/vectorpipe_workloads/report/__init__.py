"""The run report: one self-contained HTML page (plus its PNGs) that shows what a finished run found.

`write_report` reads a run the way stage 2 does, through the manifest (so only
committed shards count), plus what the k-means program wrote in `<output>/clustering/`:
`centroids.parquet`, `metrics.json` and `assignments/part-NNNNN.parquet`. It
draws the cluster sizes, a 2-D PCA projection of a seeded sample of the vectors
with the centroids marked, and the inertia per iteration, and writes them with
`index.html` under `<output>/report/` through `Store`, so an s3:// run gets its
report in the bucket. Given the true source of each read (the bundled demo data
ships them), it also scores the clustering: adjusted Rand index, NMI, purity
and a cluster × source table. The modules: `data` (reading the run, shared
records), `analysis` (sample, projection, scores), `plots`, `text` (formatting
helpers), `page` (the HTML), `writer` (`write_report`) and `cli` (`main`, run by
`python -m vectorpipe_workloads.report`). matplotlib and scikit-learn are
imported only when a report is drawn.
"""

from __future__ import annotations

from vectorpipe_workloads.report.analysis import nearest, pca_2d, sample_vectors, score
from vectorpipe_workloads.report.cli import main
from vectorpipe_workloads.report.data import (
    ASSIGNMENTS_DIR,
    CENTROIDS_NAME,
    MAX_BARS,
    MAX_TABLE_ROWS,
    METRICS_NAME,
    REPORT_DIR,
    Centroids,
    ReportResult,
    Sample,
    Scores,
    assignment_parts,
    read_assignments,
    read_centroids,
    read_metrics,
)
from vectorpipe_workloads.report.page import _labels_section as _labels_section
from vectorpipe_workloads.report.page import render_html
from vectorpipe_workloads.report.plots import (
    cluster_colours,
    plot_inertia,
    plot_projection,
    plot_sizes,
    source_colours,
)
from vectorpipe_workloads.report.text import describe_embedding, human_bytes
from vectorpipe_workloads.report.writer import write_report

__all__ = [
    "ASSIGNMENTS_DIR",
    "CENTROIDS_NAME",
    "MAX_BARS",
    "MAX_TABLE_ROWS",
    "METRICS_NAME",
    "REPORT_DIR",
    "Centroids",
    "ReportResult",
    "Sample",
    "Scores",
    "assignment_parts",
    "cluster_colours",
    "describe_embedding",
    "human_bytes",
    "main",
    "nearest",
    "pca_2d",
    "plot_inertia",
    "plot_projection",
    "plot_sizes",
    "read_assignments",
    "read_centroids",
    "read_metrics",
    "render_html",
    "sample_vectors",
    "score",
    "source_colours",
    "write_report",
]
