"""Shard planning and the manifest: balanced, deterministic, and consistent."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vectorpipe_workloads.etl.shard_writers import (
    shard_bounds,
    slices_for_range,
    write_parquet_shard,
)
from vectorpipe_workloads.manifest import (
    Manifest,
    ShardInfo,
    SourceInfo,
    read_manifest,
    write_manifest,
)
from vectorpipe_workloads.shards import embedding_matrix, make_table, read_shard
from vectorpipe_workloads.storage import Store


@given(st.integers(0, 10_000), st.integers(1, 64))
def test_shard_bounds_cover_rows_once_and_balance(total: int, shards: int) -> None:
    bounds = shard_bounds(total, shards)
    assert len(bounds) == shards
    assert bounds[0][0] == 0 and bounds[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [e - s for s, e in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_shard_bounds_rejects_zero_shards() -> None:
    with pytest.raises(ValueError, match="shards"):
        shard_bounds(10, 0)


@given(st.lists(st.integers(0, 50), min_size=1, max_size=20), st.integers(1, 7))
def test_slices_reassemble_every_row_in_order(chunks: list[int], shards: int) -> None:
    total = sum(chunks)
    starts = np.cumsum([0, *chunks])
    rows = []
    for start, end in shard_bounds(total, shards):
        for s in slices_for_range(chunks, start, end):
            assert 0 <= s.lo < s.hi <= chunks[s.chunk]
            rows.extend(range(starts[s.chunk] + s.lo, starts[s.chunk] + s.hi))
    assert rows == list(range(total))


def test_parquet_shard_roundtrip_and_manifest(tmp_path: object) -> None:
    out = str(tmp_path)
    store = Store()
    vecs = np.random.default_rng(0).random((10, 3), dtype=np.float32)
    table = make_table([f"r{i}" for i in range(10)], "s1", vecs)
    info = write_parquet_shard(store, out, 0, table)
    assert info.path == "part-00000.parquet" and info.rows == 10 and info.bytes > 0
    back = read_shard(store, out, info)
    np.testing.assert_array_equal(embedding_matrix(back), vecs)
    assert back.column("read_id").to_pylist()[3] == "r3"
    m = Manifest(
        format="parquet", dim=3, rows=10, embedding={"method": "kmer"}, shards=[info],
        sources=[SourceInfo("a.fq", 10, 100)], schema={"read_id": "string"},
    )  # fmt: skip
    write_manifest(store, out, m)
    assert read_manifest(store, out) == m


def test_manifest_refuses_inconsistent_rows() -> None:
    m = Manifest(
        format="parquet", dim=3, rows=11, embedding={}, shards=[ShardInfo("p", 10, 1)],
        sources=[], schema={},
    )  # fmt: skip
    with pytest.raises(ValueError, match="inconsistent"):
        Manifest.from_json(m.to_json())
