"""What the report computes from a run: a seeded sample, its 2-D projection and the scores.

`sample_vectors` draws a seeded random sample of the run's vectors (through the
manifest, so only committed shards count) with the cluster each was assigned to,
`pca_2d` projects it and the centroids on the sample's first two principal axes,
and `score` compares the assignments with the true source of each read when
labels are given: adjusted Rand index, NMI, purity and the cluster × source
table. scikit-learn is imported only when scoring runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from vectorpipe_workloads.manifest import Manifest
from vectorpipe_workloads.report.data import F32, F64, I64, Centroids, Sample, Scores
from vectorpipe_workloads.shards import embedding_matrix, read_shard
from vectorpipe_workloads.storage import Store

# -- sampling and projection -------------------------------------------------


def sample_vectors(
    store: Store,
    output_uri: str,
    manifest: Manifest,
    n: int,
    seed: int,
    assignments: Sequence[pa.Table],
    centroids: Centroids,
) -> Sample:
    """A seeded random sample of the run's vectors and the cluster each was assigned to."""
    total = manifest.rows
    rng = np.random.default_rng(seed)
    if total <= n:
        chosen = np.arange(total, dtype=np.int64)
    else:
        chosen = np.sort(rng.choice(total, size=n, replace=False)).astype(np.int64)
    # Assignments are sharded like the input; when every part lines up with its
    # shard the cluster of a row is found by position, which is exact even if
    # read ids repeat across input files. Otherwise fall back to the read id.
    aligned = len(assignments) == len(manifest.shards) and all(
        t.num_rows == s.rows for t, s in zip(assignments, manifest.shards, strict=True)
    )
    by_id: dict[str, int] | None = None
    if not aligned and assignments:
        by_id = {}
        for t in assignments:
            by_id.update(
                zip(t.column("read_id").to_pylist(), t.column("cluster").to_pylist(), strict=True)
            )
    vectors: list[F32] = []
    clusters: list[I64] = []
    read_ids: list[str] = []
    start = 0
    for j, shard in enumerate(manifest.shards):
        lo = int(np.searchsorted(chosen, start))
        hi = int(np.searchsorted(chosen, start + shard.rows))
        local = chosen[lo:hi] - start
        start += shard.rows
        if local.size == 0:
            continue
        table = read_shard(store, output_uri, shard, columns=["read_id", "embedding"]).take(local)
        vecs = embedding_matrix(table)
        ids = table.column("read_id").to_pylist()
        if aligned:
            assigned = assignments[j].column("cluster").take(local).to_numpy()
            cl = np.asarray(assigned, dtype=np.int64)
        elif by_id is not None:
            cl = np.array([by_id.get(r, -1) for r in ids], dtype=np.int64)
        else:
            cl = np.full(len(local), -1, dtype=np.int64)
        missing = cl < 0
        if missing.any():
            # A row the program did not assign (or no assignments at all): place
            # it at its nearest centroid, which is what k-means would do.
            cl[missing] = nearest(vecs[missing], centroids)
        vectors.append(vecs)
        clusters.append(cl)
        read_ids.extend(ids)
    if not vectors:
        dim = centroids.vectors.shape[1] if centroids.vectors.ndim == 2 else manifest.dim
        return Sample(np.zeros((0, dim), np.float32), np.zeros(0, np.int64), [])
    return Sample(np.concatenate(vectors), np.concatenate(clusters), read_ids)


def nearest(vectors: F32, centroids: Centroids) -> I64:
    if len(centroids.ids) == 0:
        return np.zeros(len(vectors), np.int64)
    x = vectors.astype(np.float64)
    c = centroids.vectors.astype(np.float64)
    d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    return np.asarray(centroids.ids[np.argmin(d, axis=1)], dtype=np.int64)


def pca_2d(sample: F32, extra: F32) -> tuple[F64, F64, tuple[float, float]]:
    """Project `sample` and `extra` (the centroids) on the sample's first two principal axes."""
    x = sample.astype(np.float64)
    if len(x) < 2:
        return np.zeros((len(x), 2)), np.zeros((len(extra), 2)), (0.0, 0.0)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = np.zeros((2, x.shape[1]))
    axes[: min(2, len(vt))] = vt[:2]
    var = s**2
    share = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    explained = (
        float(share[0]) if len(share) > 0 else 0.0,
        float(share[1]) if len(share) > 1 else 0.0,
    )
    return (x - mean) @ axes.T, (extra.astype(np.float64) - mean) @ axes.T, explained


# -- scoring against labels --------------------------------------------------


def score(labels: dict[str, str], assignments: Sequence[pa.Table], cluster_ids: I64) -> Scores:
    """ARI, NMI, purity and the cluster × source table over the rows that have a label."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    if not assignments or not labels:
        return Scores(None, None, None, 0)
    truth = pa.table(
        {
            "read_id": pa.array(list(labels.keys()), pa.string()),
            "source": pa.array(list(labels.values()), pa.string()),
        }
    )
    assigned = pa.concat_tables([t.select(["read_id", "cluster"]) for t in assignments])
    # A hash join in Arrow: the run can be far larger than a Python dict loop likes.
    joined = assigned.join(truth, keys="read_id", join_type="inner")
    if joined.num_rows == 0:
        return Scores(None, None, None, 0)
    clusters = np.asarray(joined.column("cluster").to_numpy(), dtype=np.int64)
    encoded = joined.column("source").combine_chunks().dictionary_encode()
    sources = [str(s) for s in encoded.dictionary.to_pylist()]
    codes = np.asarray(encoded.indices.to_numpy(), dtype=np.int64)
    order = np.argsort(sources)
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    codes = remap[codes]
    sources = [sources[i] for i in order]

    ids = np.union1d(cluster_ids, np.unique(clusters))
    rows = np.searchsorted(ids, clusters)
    table = np.zeros((len(ids), len(sources)), np.int64)
    np.add.at(table, (rows, codes), 1)
    n = int(joined.num_rows)
    ari = float(adjusted_rand_score(codes, clusters)) if n >= 2 else None
    nmi = float(normalized_mutual_info_score(codes, clusters)) if n >= 2 else None
    purity = float(table.max(axis=1).sum() / n)
    return Scores(ari, nmi, purity, n, sources, ids, table)
