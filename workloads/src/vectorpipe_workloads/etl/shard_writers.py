"""Stage 1's shard writers: the balanced shard plan, Parquet shards and Lance fragments.

Rows are numbered in input order (files sorted by URI, records in file order).
A run with R rows and S shards gives shard j the contiguous rows
[j*R//S, (j+1)*R//S), so shard sizes differ by at most one row and the same
spec always gives the same shards. Parquet shards are written to a local file
and published atomically as `part-NNNNN.parquet`; Lance shards are fragments
written independently and committed in one `Overwrite` transaction, which is
Lance's own atomic commit. The schema and names they follow are the shard
contract in `vectorpipe_workloads.shards`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from vectorpipe_workloads.manifest import ShardInfo
from vectorpipe_workloads.shards import LANCE_DATASET, shard_name, shard_schema
from vectorpipe_workloads.storage import Store, is_s3, join

ROW_GROUP_ROWS = 65536


def shard_bounds(total_rows: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous, balanced [start, end) row ranges: sizes differ by at most one."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    return [(j * total_rows // shards, (j + 1) * total_rows // shards) for j in range(shards)]


@dataclass(frozen=True)
class Slice:
    """Rows [lo, hi) of the staged chunk `chunk`."""

    chunk: int
    lo: int
    hi: int


def slices_for_range(chunk_rows: Sequence[int], start: int, end: int) -> list[Slice]:
    """Which parts of which staged chunks make up global rows [start, end)."""
    out: list[Slice] = []
    offset = 0
    for i, n in enumerate(chunk_rows):
        lo, hi = max(start, offset), min(end, offset + n)
        if lo < hi:
            out.append(Slice(i, lo - offset, hi - offset))
        offset += n
        if offset >= end:
            break
    return out


def write_parquet_shard(store: Store, output_uri: str, index: int, table: pa.Table) -> ShardInfo:
    """Write one shard and publish it whole under its final name."""
    name = shard_name(index)
    uri = join(output_uri, name)
    if is_s3(output_uri):
        fd, tmp = tempfile.mkstemp(prefix=".vp-", suffix=".parquet")
        os.close(fd)
        try:
            pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS, compression="snappy")
            size = os.path.getsize(tmp)
            store.put_file(tmp, uri)
        finally:
            os.unlink(tmp)
        return ShardInfo(path=name, rows=table.num_rows, bytes=size)
    final = store.make_scratch_dir(output_uri)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=final)
    os.close(fd)
    try:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS, compression="snappy")
        size = os.path.getsize(tmp)
        os.replace(tmp, os.path.join(final, name))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return ShardInfo(path=name, rows=table.num_rows, bytes=size)


def write_lance_fragment(store: Store, output_uri: str, table: pa.Table) -> tuple[str, int]:
    """Write one Lance fragment (not yet visible); return its metadata as JSON and its bytes."""
    from lance.fragment import LanceFragment

    uri = join(output_uri, LANCE_DATASET)
    frag = LanceFragment.create(uri, table, storage_options=store.lance_storage_options() or None)
    size = sum(int(f.file_size_bytes or 0) for f in frag.files)
    return json.dumps(frag.to_json()), size


def commit_lance(
    store: Store, output_uri: str, fragments_json: Sequence[str], dim: int
) -> list[int]:
    """Make the written fragments the dataset's content in one atomic commit."""
    import lance
    from lance.fragment import FragmentMetadata

    uri = join(output_uri, LANCE_DATASET)
    fragments = [FragmentMetadata.from_json(f) for f in fragments_json]
    op = lance.LanceOperation.Overwrite(shard_schema(dim), fragments)
    ds = lance.LanceDataset.commit(uri, op, storage_options=store.lance_storage_options() or None)
    return [f.fragment_id for f in ds.get_fragments()]
