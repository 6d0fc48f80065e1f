"""The shard contract: the Arrow schema, shard file names, and reading a shard back.

Every shard holds rows of (`read_id`, `sample`, `embedding`: a fixed-size
list of float32). Stage 1 writes shards in this schema (`etl.shard_writers`),
stage 2 and the report read them through `read_shard` and `embedding_matrix`,
and only shards a manifest lists count. Parquet shards are named
`part-NNNNN.parquet`; Lance shards are fragments of one `embeddings.lance`
dataset, addressed by the fragment id the manifest records.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vectorpipe_workloads.manifest import ShardInfo
from vectorpipe_workloads.storage import Store, join

LANCE_DATASET = "embeddings.lance"


def shard_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("read_id", pa.string(), nullable=False),
            pa.field("sample", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


def schema_description(dim: int) -> dict[str, str]:
    return {
        "read_id": "string",
        "sample": "string",
        "embedding": f"fixed_size_list<float32>[{dim}]",
    }


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def make_table(ids: Sequence[str], sample: Sequence[str] | str, vectors: np.ndarray) -> pa.Table:
    """An Arrow table in the shard schema from ids, sample label(s) and an (n, dim) float32 matrix."""
    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    samples = [sample] * n if isinstance(sample, str) else list(sample)
    return pa.Table.from_arrays(
        [
            pa.array(list(ids), pa.string()),
            pa.array(samples, pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, dim),
        ],
        schema=shard_schema(dim),
    )


def embedding_matrix(table: pa.Table) -> np.ndarray:
    """The embedding column as an (n, dim) float32 array, zero-copy where Arrow allows."""
    col = table.column("embedding").combine_chunks()
    dim = col.type.list_size
    values = col.values.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(-1, dim)


def read_shard(
    store: Store, output_uri: str, shard: ShardInfo, columns: list[str] | None = None
) -> pa.Table:
    """One shard as an Arrow table, Parquet or Lance."""
    if shard.fragment is not None:
        import lance

        ds = lance.dataset(
            join(output_uri, shard.path), storage_options=store.lance_storage_options() or None
        )
        fragment = ds.get_fragment(shard.fragment)
        if fragment is None:
            raise FileNotFoundError(f"Lance fragment {shard.fragment} missing in {shard.path}")
        return fragment.to_table(columns=columns)
    uri = join(output_uri, shard.path)
    with store.local_copy(uri) as path:
        return pq.read_table(path, columns=columns, memory_map=False)
