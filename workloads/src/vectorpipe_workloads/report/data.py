"""Reading a finished run: the files the report draws on and the records it passes around.

The k-means program leaves `centroids.parquet`, `metrics.json` and
`assignments/part-NNNNN.parquet` under `<output>/clustering/`; these helpers read
them through `Store` (so s3:// works the same as a local path) into `Centroids`
and Arrow tables. The dataclasses here (`ReportResult`, `Centroids`, `Sample`,
`Scores`) and the file-name and size-limit constants are shared by every other
module of the report package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from vectorpipe_workloads.shards import embedding_matrix
from vectorpipe_workloads.storage import Store, join

REPORT_DIR = "report"
CENTROIDS_NAME = "centroids.parquet"
METRICS_NAME = "metrics.json"
ASSIGNMENTS_DIR = "assignments"
# Past these many clusters a per-cluster bar chart or table stops being readable.
MAX_BARS = 50
MAX_TABLE_ROWS = 200

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and, when labels were given, how well the clusters match them."""

    uri: str  # the report's index.html
    files: list[str]
    ari: float | None = None
    nmi: float | None = None
    purity: float | None = None
    labelled_rows: int = 0


@dataclass(frozen=True)
class Centroids:
    ids: I64
    sizes: I64
    vectors: F32


@dataclass(frozen=True)
class Sample:
    """Sampled rows of a run: their vectors, assigned clusters and read ids."""

    vectors: F32
    clusters: I64
    read_ids: list[str]


@dataclass(frozen=True)
class Scores:
    ari: float | None
    nmi: float | None
    purity: float | None
    labelled: int
    sources: list[str] = field(default_factory=list)
    # contingency[i, j]: labelled rows of cluster cluster_ids[i] whose true source is sources[j]
    cluster_ids: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    contingency: I64 = field(default_factory=lambda: np.zeros((0, 0), np.int64))

    def row_of(self, cluster: int) -> int | None:
        pos = int(np.searchsorted(self.cluster_ids, cluster))
        found = pos < len(self.cluster_ids) and int(self.cluster_ids[pos]) == cluster
        return pos if found else None


# -- reading a finished run --------------------------------------------------


def _read_parquet(store: Store, uri: str, columns: list[str] | None = None) -> pa.Table:
    import pyarrow.parquet as pq

    with store.local_copy(uri) as path:
        return pq.read_table(path, columns=columns, memory_map=False)


def read_centroids(store: Store, output_uri: str) -> Centroids:
    table = _read_parquet(store, join(output_uri, CENTROIDS_NAME))
    ids = np.asarray(table.column("cluster").to_numpy(), dtype=np.int64)
    sizes = np.asarray(table.column("size").to_numpy(), dtype=np.int64)
    vectors = embedding_matrix(table.select(["centroid"]).rename_columns(["embedding"]))
    order = np.argsort(ids, kind="stable")
    return Centroids(ids[order], sizes[order], vectors[order])


def read_metrics(store: Store, output_uri: str) -> dict[str, Any]:
    uri = join(output_uri, METRICS_NAME)
    if not store.exists(uri):
        return {}
    raw = json.loads(store.read_bytes(uri))
    return raw if isinstance(raw, dict) else {}


def assignment_parts(store: Store, output_uri: str) -> list[str]:
    prefix = join(output_uri, ASSIGNMENTS_DIR)
    parts = [
        u
        for u in store.list_prefix(prefix)
        if u.rsplit("/", 1)[-1].startswith("part-") and u.endswith(".parquet")
    ]
    return sorted(parts)


def read_assignments(store: Store, parts: Sequence[str]) -> list[pa.Table]:
    return [_read_parquet(store, u, columns=["read_id", "cluster"]) for u in parts]
