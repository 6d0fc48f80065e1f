"""Shard formats: Parquet vs Lance for the stage-1 output, through the product's own writers.

The table is what stage 1 writes (read_id, sample, fixed-size-list<float32>
embedding of canonical 4-mer profiles); Parquet goes through
`etl.shard_writers.write_parquet_shard` (snappy, the product's row groups), Lance through
`write_lance_fragment` + `commit_lance`. A full scan reads every column back
into Arrow and the embedding into numpy; random access fetches `random_rows`
rows by index (Lance `take`; Parquet reads the row groups holding them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import Json, Scale, best_of, log
from bench.data import Labelled, repeated
from vectorpipe_workloads.etl.embed import KmerEmbedder
from vectorpipe_workloads.etl.shard_writers import (
    commit_lance,
    write_lance_fragment,
    write_parquet_shard,
)
from vectorpipe_workloads.shards import embedding_matrix, make_table
from vectorpipe_workloads.storage import Store


def build_table(pool: Labelled, n: int) -> pa.Table:
    seqs, _ = repeated(pool, n)
    raw = "".join(seqs).encode()
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum([len(s) for s in seqs], out=offsets[1:])
    vectors = KmerEmbedder(4).embed(np.frombuffer(raw, np.uint8), offsets)
    return make_table([f"r{i}" for i in range(n)], "bench", vectors)


def parquet_take(path: Path, idx: np.ndarray) -> pa.Table:
    """Rows `idx` (sorted) of a Parquet file, reading only the row groups that hold them."""
    f = pq.ParquetFile(path)
    sizes = [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    group = np.searchsorted(starts, idx, side="right") - 1
    wanted = np.unique(group)
    # Where each wanted group starts inside the table read_row_groups returns.
    first = dict(
        zip(
            wanted.tolist(),
            np.concatenate([[0], np.cumsum([sizes[g] for g in wanted])]).tolist(),
            strict=False,
        )
    )
    local = [
        first[g] + int(i - starts[g]) for i, g in zip(idx.tolist(), group.tolist(), strict=True)
    ]
    return f.read_row_groups(wanted.tolist()).take(pa.array(local))


def run(scale: Scale, pool: Labelled, work: Path) -> Json:
    import lance

    log(f"shards: Parquet vs Lance, {scale.shard_rows} rows")
    table = build_table(pool, scale.shard_rows)
    store = Store()
    nbytes = table.nbytes
    pq_dir, ln_dir = work / "parquet", work / "lance"

    def write_parquet() -> None:
        shutil.rmtree(pq_dir, ignore_errors=True)
        write_parquet_shard(store, str(pq_dir) + "/", 0, table)

    def write_lance() -> None:
        shutil.rmtree(ln_dir, ignore_errors=True)
        frag, _ = write_lance_fragment(store, str(ln_dir) + "/", table)
        commit_lance(store, str(ln_dir) + "/", [frag], 136)

    w_pq = best_of(write_parquet, scale.repeats)
    w_ln = best_of(write_lance, scale.repeats)
    pq_file = next(pq_dir.glob("*.parquet"))
    ln_uri = str(next(ln_dir.iterdir()))
    r_pq = best_of(lambda: embedding_matrix(pq.read_table(pq_file)), scale.repeats)
    r_ln = best_of(lambda: embedding_matrix(lance.dataset(ln_uri).to_table()), scale.repeats)
    idx = np.sort(
        np.random.default_rng(5).choice(scale.shard_rows, scale.random_rows, replace=False)
    )
    got_pq = parquet_take(pq_file, idx)
    got_ln = lance.dataset(ln_uri).take(idx.tolist())
    if got_pq.column("read_id").to_pylist() != got_ln.column("read_id").to_pylist():
        raise AssertionError("Parquet and Lance random access returned different rows")
    t_pq = best_of(lambda: parquet_take(pq_file, idx), scale.repeats)
    t_ln = best_of(lambda: lance.dataset(ln_uri).take(idx.tolist()), scale.repeats)
    size_pq = pq_file.stat().st_size
    size_ln = sum(p.stat().st_size for p in ln_dir.rglob("*") if p.is_file())
    rows = scale.shard_rows
    return {
        "rows": rows,
        "arrow_bytes": nbytes,
        "parquet": {
            "bytes": size_pq,
            "write_rows_per_s": rows / w_pq,
            "scan_rows_per_s": rows / r_pq,
            "random_rows_per_s": scale.random_rows / t_pq,
        },
        "lance": {
            "bytes": size_ln,
            "write_rows_per_s": rows / w_ln,
            "scan_rows_per_s": rows / r_ln,
            "random_rows_per_s": scale.random_rows / t_ln,
        },
    }
