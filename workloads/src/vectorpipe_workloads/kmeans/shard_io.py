"""Stage 2's reads and writes: a rank's rows in, the clustering contract out.

A rank reads only the shards that overlap its global row range and slices
them into one contiguous float32 matrix. Outputs follow the contract: per-row
assignments sharded exactly like the input (`assignments/part-NNNNN.parquet`
with `read_id, cluster, distance`), where shard j is written by the rank that
owns its first row and every other rank holding part of shard j sends its
labels and distances to that writer point-to-point (the sizes follow from the
manifest, so no metadata is exchanged); then `centroids.parquet` and
`metrics.json` from rank 0, optionally the seed's CSV files, and `_SUCCESS`
last. Every object goes through `Store`, so each appears whole or not at all,
locally or on S3. Communication is finished before any write can fail, so a
failed write never leaves another rank blocked in a receive.
"""

from __future__ import annotations

import bisect
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vectorpipe_workloads.kmeans.distributed import Communicator, rank_bounds
from vectorpipe_workloads.kmeans.kernels import F32, I32, I64
from vectorpipe_workloads.manifest import MANIFEST_NAME, Manifest, read_manifest
from vectorpipe_workloads.shards import embedding_matrix, read_shard, shard_name
from vectorpipe_workloads.storage import Store, join

ASSIGNMENTS_DIR = "assignments"
CENTROIDS_NAME = "centroids.parquet"
METRICS_NAME = "metrics.json"
SUCCESS_NAME = "_SUCCESS"
CENTROIDS_CSV = "cluster_centroids.csv"
RANK_CSV = "clustering_results_rank_{:04d}.csv"
_TAG = 7301


class InputError(Exception):
    """Something about the input a user has to fix: no manifest, a bad shard, bad arguments."""


@dataclass(frozen=True)
class Dataset:
    """A committed stage-1 output: its manifest and the URI its shard paths are relative to."""

    manifest: Manifest
    base_uri: str
    manifest_uri: str

    @property
    def rows(self) -> int:
        return self.manifest.rows

    @property
    def dim(self) -> int:
        return self.manifest.dim

    def shard_bounds(self) -> list[tuple[int, int]]:
        """Global rows [start, end) of every shard, in manifest order."""
        out, start = [], 0
        for s in self.manifest.shards:
            out.append((start, start + s.rows))
            start += s.rows
        return out

    def overlapping(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """(shard, first, end) shard-local row slices that make up global rows [lo, hi)."""
        out = []
        for j, (start, end) in enumerate(self.shard_bounds()):
            a, b = max(lo, start), min(hi, end)
            if a < b:
                out.append((j, a - start, b - start))
        return out

    def shard_uri(self, j: int) -> str:
        return join(self.base_uri, self.manifest.shards[j].path)


def open_dataset(store: Store, uri: str) -> Dataset:
    """The manifest at `uri` (its own URI or the stage-1 output URI that holds it)."""
    if uri.endswith(".json"):
        manifest_uri, base = uri, uri.rstrip("/").rsplit("/", 1)[0]
    else:
        manifest_uri, base = join(uri, MANIFEST_NAME), uri.rstrip("/")
    try:
        present = store.exists(manifest_uri)
    except Exception as e:
        raise InputError(f"cannot reach manifest {manifest_uri}: {e}") from e
    if not present:
        raise InputError(f"no manifest at {manifest_uri}: stage 1 has not committed")
    try:
        manifest = read_manifest(store, manifest_uri)
    except Exception as e:
        raise InputError(f"unreadable manifest {manifest_uri}: {e}") from e
    return Dataset(manifest, base, manifest_uri)


def _shard_rows(store: Store, ds: Dataset, j: int, a: int, b: int) -> F32:
    """Rows [a, b) of shard j's embeddings; for Parquet only the row groups that hold them."""
    shard = ds.manifest.shards[j]
    if shard.fragment is not None:
        matrix = embedding_matrix(read_shard(store, ds.base_uri, shard, columns=["embedding"]))
        rows, offset = matrix.shape[0], 0
    else:
        # A rank that needs a few rows of a big shard should not decode all of it.
        with store.local_copy(ds.shard_uri(j)) as path:
            pf = pq.ParquetFile(path, memory_map=False)
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
            groups = [g for g in range(len(sizes)) if starts[g] < b and starts[g + 1] > a]
            matrix = embedding_matrix(pf.read_row_groups(groups, columns=["embedding"]))
            rows, offset = int(starts[-1]), int(starts[groups[0]]) if groups else 0
    if rows != shard.rows or matrix.shape[1] != ds.dim:
        raise InputError(
            f"shard {ds.shard_uri(j)} has {rows} rows of dim {matrix.shape[1]}, "
            f"the manifest says {shard.rows} rows of dim {ds.dim}"
        )
    return matrix[a - offset : b - offset]


def read_rows(store: Store, ds: Dataset, lo: int, hi: int) -> F32:
    """Global rows [lo, hi) as one C-contiguous (hi - lo, dim) float32 matrix."""
    out = np.empty((hi - lo, ds.dim), np.float32)
    at = 0
    for j, a, b in ds.overlapping(lo, hi):
        try:
            part = _shard_rows(store, ds, j, a, b)
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"cannot read shard {ds.shard_uri(j)}: {e}") from e
        out[at : at + b - a] = part
        at += b - a
    return out


def _read_ids(store: Store, ds: Dataset, j: int) -> pa.Array:
    shard = ds.manifest.shards[j]
    try:
        ids = read_shard(store, ds.base_uri, shard, columns=["read_id"]).column("read_id")
    except Exception as e:
        raise InputError(f"cannot read shard {ds.shard_uri(j)}: {e}") from e
    if len(ids) != shard.rows:
        raise InputError(f"shard {ds.shard_uri(j)} has {len(ids)} rows, manifest says {shard.rows}")
    return ids.combine_chunks()


def read_ids(store: Store, ds: Dataset, lo: int, hi: int) -> pa.Array:
    """`read_id` of global rows [lo, hi)."""
    parts = [_read_ids(store, ds, j).slice(a, b - a) for j, a, b in ds.overlapping(lo, hi)]
    return pa.concat_arrays(parts) if parts else pa.array([], pa.string())


def assignments_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("read_id", pa.string(), nullable=False),
            pa.field("cluster", pa.int32(), nullable=False),
            pa.field("distance", pa.float32(), nullable=False),
        ]
    )


def centroids_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("cluster", pa.int32(), nullable=False),
            pa.field("size", pa.int64(), nullable=False),
            pa.field("centroid", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return bytes(sink.getvalue().to_pybytes())


def exchange_assignments(
    comm: Communicator, ds: Dataset, labels: I32, dist: F32
) -> dict[int, tuple[I32, F32]]:
    """Move every shard's labels and distances to its writer; return the shards this rank writes.

    Collective and free of I/O. A shard's writer owns its first row; the other
    ranks that hold part of it send their slice, labels and distances packed
    in one int32 message, and the writer receives them in rank order.
    """
    ranks, rank = comm.Get_size(), comm.Get_rank()
    bounds = rank_bounds(ds.rows, ranks)
    starts = [lo for lo, _ in bounds]

    def owner(row: int) -> int:
        # An empty rank shares its start with the next one; the later, non-empty one owns it.
        return max(0, bisect.bisect_right(starts, row) - 1)

    shard_bounds = ds.shard_bounds()
    lo, hi = bounds[rank]
    requests = []
    for j, a, b in ds.overlapping(lo, hi):
        start = shard_bounds[j][0]
        writer = owner(start)
        if writer != rank:
            at = start + a - lo
            packed = np.concatenate([labels[at : at + b - a], dist[at : at + b - a].view(np.int32)])
            requests.append(comm.Isend(packed, dest=writer, tag=_TAG))
    mine: dict[int, tuple[I32, F32]] = {}
    for j, (start, end) in enumerate(shard_bounds):
        if owner(start) != rank:
            continue
        n = end - start
        shard_labels = np.empty(n, np.int32)
        shard_dist = np.empty(n, np.float32)
        for r in range(ranks):
            a, b = max(bounds[r][0], start), min(bounds[r][1], end)
            if a >= b:
                continue
            if r == rank:
                shard_labels[a - start : b - start] = labels[a - lo : b - lo]
                shard_dist[a - start : b - start] = dist[a - lo : b - lo]
                continue
            # Messages between a pair of ranks arrive in order, and both sides
            # walk the shards in order, so one tag is enough.
            packed = np.empty(2 * (b - a), np.int32)
            comm.Recv(packed, source=r, tag=_TAG)
            shard_labels[a - start : b - start] = packed[: b - a]
            shard_dist[a - start : b - start] = packed[b - a :].view(np.float32)
        mine[j] = (shard_labels, shard_dist)
    for req in requests:
        req.Wait()
    return mine


def write_assignments(
    store: Store, output: str, ds: Dataset, shards: dict[int, tuple[I32, F32]]
) -> None:
    """Write `assignments/part-NNNNN.parquet` for the shards this rank writes."""
    for j, (labels, dist) in sorted(shards.items()):
        table = pa.Table.from_arrays(
            [_read_ids(store, ds, j), pa.array(labels, pa.int32()), pa.array(dist, pa.float32())],
            schema=assignments_schema(),
        )
        store.write_bytes(join(output, f"{ASSIGNMENTS_DIR}/{shard_name(j)}"), _parquet_bytes(table))


def write_centroids(store: Store, output: str, centroids: F32, sizes: I64) -> None:
    k, dim = centroids.shape
    flat = pa.array(np.ascontiguousarray(centroids, np.float32).reshape(-1), pa.float32())
    table = pa.Table.from_arrays(
        [
            pa.array(np.arange(k, dtype=np.int32), pa.int32()),
            pa.array(np.asarray(sizes, np.int64), pa.int64()),
            pa.FixedSizeListArray.from_arrays(flat, dim),
        ],
        schema=centroids_schema(dim),
    )
    store.write_bytes(join(output, CENTROIDS_NAME), _parquet_bytes(table))


def write_metrics(store: Store, output: str, metrics: dict[str, Any]) -> None:
    text = json.dumps(metrics, indent=2, sort_keys=True, default=_json_default) + "\n"
    store.write_bytes(join(output, METRICS_NAME), text.encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _csv_bytes(table: pa.Table) -> bytes:
    header = (",".join(table.column_names) + "\n").encode()
    sink = pa.BufferOutputStream()
    try:
        # Plain `id,cluster` lines like the seed's files, unless an id needs quotes.
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        pacsv.write_csv(table, sink, options)
    except pa.ArrowInvalid:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return header + bytes(sink.getvalue().to_pybytes())


def write_rank_csv(store: Store, output: str, rank: int, ids: pa.Array, labels: I32) -> None:
    """The seed's `clustering_results_rank_NNNN.csv`: `read_id,cluster` for this rank's rows."""
    table = pa.table({"read_id": ids, "cluster": pa.array(labels, pa.int32())})
    store.write_bytes(join(output, RANK_CSV.format(rank)), _csv_bytes(table))


def write_centroids_csv(store: Store, output: str, centroids: F32, sizes: I64) -> None:
    """The seed's `cluster_centroids.csv`: `cluster,size,c0..c{dim-1}`, one line per cluster."""
    k, dim = centroids.shape
    buf = io.StringIO()
    buf.write(",".join(["cluster", "size", *(f"c{i}" for i in range(dim))]) + "\n")
    for c in range(k):
        values = ",".join(f"{float(v):.9g}" for v in centroids[c])
        buf.write(f"{c},{int(sizes[c])},{values}\n")
    store.write_bytes(join(output, CENTROIDS_CSV), buf.getvalue().encode())


def clear_success(store: Store, output: str) -> None:
    """Drop a `_SUCCESS` left by an earlier run, so a failing rerun cannot look finished."""
    store.delete(join(output, SUCCESS_NAME))


def write_success(store: Store, output: str) -> None:
    store.write_bytes(join(output, SUCCESS_NAME), b"")
