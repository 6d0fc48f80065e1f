"""Stage 2 under the real `mpirun`: 1, 2 and 4 ranks agree, the contract is honoured, errors are clean.

The input is three Gaussian blobs in five Parquet shards of uneven sizes (one
shard of a single row), so rank ranges cut shards in different places for
every rank count and the assignment writers have to receive slices from
other ranks.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.services.s3 import LocalS3
from vectorpipe_workloads import manifest, shards
from vectorpipe_workloads.etl import shard_writers
from vectorpipe_workloads.storage import S3Config, Store

pytestmark = pytest.mark.mpi

MPIRUN = shutil.which("mpirun") or "/usr/bin/mpirun"
SIZES = [1100, 250, 1, 900, 749]
DIM = 16
K = 3
RANKS = (1, 2, 4)


def kmeans(ranks: int, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [
        MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", str(ranks),
        sys.executable, "-m", "vectorpipe_workloads.kmeans", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def write_dataset(store: Store, uri: str) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(2024)
    means = rng.normal(0.0, 5.0, (K, DIM))
    n = sum(SIZES)
    X = (means[rng.integers(0, K, n)] + rng.normal(0.0, 1.0, (n, DIM))).astype(np.float32)
    ids = [f"read-{i:05d}" for i in range(n)]
    infos, at = [], 0
    for j, size in enumerate(SIZES):
        table = shards.make_table(ids[at : at + size], "blobs", X[at : at + size])
        infos.append(shard_writers.write_parquet_shard(store, uri, j, table))
        at += size
    m = manifest.Manifest(
        format="parquet", dim=DIM, rows=n, embedding={"method": "test"}, shards=infos,
        sources=[], schema=shards.schema_description(DIM),
    )  # fmt: skip
    manifest.write_manifest(store, uri, m)
    return X, ids


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, list[str]]:
    root = tmp_path_factory.mktemp("kmeans-in")
    X, ids = write_dataset(Store(), str(root))
    return root, X, ids


@pytest.fixture(scope="module")
def runs(
    dataset: tuple[Path, np.ndarray, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, tuple[Path, subprocess.CompletedProcess[str]]]:
    root, _, _ = dataset
    out: dict[int, tuple[Path, subprocess.CompletedProcess[str]]] = {}
    for p in RANKS:
        dest = tmp_path_factory.mktemp(f"kmeans-out-{p}")
        proc = kmeans(
            p, "--manifest", str(root / "_manifest.json"), "--output", str(dest),
            "--clusters", str(K), "--max-iterations", "50", "--tolerance", "1e-4",
            "--seed", "7", "--csv",
        )  # fmt: skip
        out[p] = (dest, proc)
    return out


def centroids(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = pq.read_table(path / "centroids.parquet")
    vectors = np.asarray(t.column("centroid").combine_chunks().values.to_numpy()).reshape(-1, DIM)
    return t.column("cluster").to_numpy(), t.column("size").to_numpy(), vectors


def test_every_rank_count_succeeds(runs: dict[int, tuple[Path, Any]]) -> None:
    for p, (dest, proc) in runs.items():
        assert proc.returncode == 0, f"P={p}\n{proc.stdout}\n{proc.stderr}"
        assert "iter 1 inertia=" in proc.stderr
        assert (dest / "_SUCCESS").exists()
        assert f"{p} ranks" in proc.stderr


def test_centroids_agree_across_rank_counts(runs: dict[int, tuple[Path, Any]]) -> None:
    ids1, sizes1, c1 = centroids(runs[1][0])
    assert ids1.tolist() == list(range(K))
    assert sorted(sizes1.tolist()) != [0] * K and int(sizes1.sum()) == sum(SIZES)
    for p in RANKS[1:]:
        ids, sizes, c = centroids(runs[p][0])
        assert ids.tolist() == ids1.tolist()
        np.testing.assert_allclose(c, c1, rtol=1e-4, atol=1e-5)
        assert sizes.tolist() == sizes1.tolist()


def test_assignments_cover_every_row_once(
    runs: dict[int, tuple[Path, Any]], dataset: tuple[Path, np.ndarray, list[str]]
) -> None:
    _, X, ids = dataset
    first = None
    for p, (dest, _) in runs.items():
        parts = sorted((dest / "assignments").iterdir())
        assert [f.name for f in parts] == [shards.shard_name(j) for j in range(len(SIZES))]
        tables = [pq.read_table(f) for f in parts]
        assert [t.num_rows for t in tables] == SIZES
        assert [str(f.type) for f in tables[0].schema] == ["string", "int32", "float"]
        read_ids = [r for t in tables for r in t.column("read_id").to_pylist()]
        assert read_ids == ids, f"P={p}"
        labels = np.concatenate([t.column("cluster").to_numpy() for t in tables])
        dist = np.concatenate([t.column("distance").to_numpy() for t in tables])
        # Each row went to its nearest final centroid, at the distance written.
        _, sizes, c = centroids(dest)
        d = ((X[:, None, :].astype(np.float64) - c[None, :, :]) ** 2).sum(axis=2)
        assert np.array_equal(labels, d.argmin(axis=1))
        np.testing.assert_allclose(dist, d.min(axis=1), rtol=1e-3, atol=1e-3)
        assert np.bincount(labels, minlength=K).tolist() == sizes.tolist()
        if first is None:
            first = labels
        assert np.array_equal(labels, first)


def test_metrics_are_sane(runs: dict[int, tuple[Path, Any]]) -> None:
    for p, (dest, _) in runs.items():
        m = json.loads((dest / "metrics.json").read_text())
        assert (m["ranks"], m["rows"], m["dim"], m["clusters"], m["seed"]) == (p, 3000, DIM, K, 7)
        assert 1 <= m["iterations"] <= 50 and m["converged"] is True
        inertia = m["inertia"]
        assert len(inertia) == m["iterations"] + 1
        assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(inertia))
        reference = json.loads((runs[1][0] / "metrics.json").read_text())["inertia"][-1]
        assert inertia[-1] == pytest.approx(reference, rel=1e-5)
        assert set(m["seconds"]) == {"read", "init", "iterate", "write", "total"}
        assert all(v >= 0 for v in m["seconds"].values())
        assert m["seconds"]["total"] >= m["seconds"]["iterate"]
        assert m["ms_per_iteration"] > 0 and len(m["ms_per_iteration_each"]) == m["iterations"]
        assert m["blas"] and m["blas"][0]["user_api"] == "blas"
        assert m["sample_rows"] == 3000 and m["tolerance_absolute"] > 0


def test_csv_files_like_the_seed(
    runs: dict[int, tuple[Path, Any]], dataset: tuple[Path, np.ndarray, list[str]]
) -> None:
    _, _, ids = dataset
    for p, (dest, _) in runs.items():
        files = sorted(dest.glob("clustering_results_rank_*.csv"))
        assert [f.name for f in files] == [f"clustering_results_rank_{r:04d}.csv" for r in range(p)]
        lines = [line for f in files for line in f.read_text().splitlines()[1:]]
        assert [line.split(",")[0] for line in lines] == ids
        rows = (dest / "cluster_centroids.csv").read_text().splitlines()
        assert rows[0].startswith("cluster,size,c0,") and len(rows) == K + 1


def test_missing_manifest_fails_cleanly(tmp_path: Path) -> None:
    proc = kmeans(2, "--manifest", str(tmp_path / "nope"), "--output", str(tmp_path / "out"),
                  "--clusters", "3")  # fmt: skip
    assert proc.returncode != 0
    assert f"no manifest at {tmp_path / 'nope' / '_manifest.json'}: stage 1 has not committed" in (
        proc.stderr
    )
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_unreadable_shard_fails_cleanly(
    dataset: tuple[Path, np.ndarray, list[str]], tmp_path: Path
) -> None:
    src = tmp_path / "in"
    shutil.copytree(dataset[0], src)
    (src / "part-00003.parquet").write_bytes(b"PAR1 this is not a parquet file")
    proc = kmeans(2, "--manifest", str(src), "--output", str(tmp_path / "out"), "--clusters", "3")
    assert proc.returncode != 0
    assert f"cannot read shard {src / 'part-00003.parquet'}" in proc.stderr
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_more_clusters_than_rows_fails_cleanly(
    dataset: tuple[Path, np.ndarray, list[str]], tmp_path: Path
) -> None:
    proc = kmeans(2, "--manifest", str(dataset[0]), "--output", str(tmp_path), "--clusters", "3001")
    assert proc.returncode != 0
    assert "--clusters 3001 is more than the 3000 rows" in proc.stderr


def test_comm_self_runs_the_algorithm_in_one_process(
    dataset: tuple[Path, np.ndarray, list[str]], runs: dict[int, tuple[Path, Any]]
) -> None:
    script = f"""
from mpi4py import MPI
import numpy as np
from vectorpipe_workloads.kmeans import distributed, shard_io
from vectorpipe_workloads.storage import Store
ds = shard_io.open_dataset(Store(), {str(dataset[0])!r})
X = shard_io.read_rows(Store(), ds, 0, ds.rows)
r = distributed.fit(MPI.COMM_SELF, X, ds.rows, {K}, 50, 1e-4, seed=7)
np.save({str(dataset[0] / "self.npy")!r}, r.centroids)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(
        np.load(dataset[0] / "self.npy"), centroids(runs[1][0])[2], rtol=1e-4
    )


@pytest.mark.s3
def test_s3_in_and_out(s3: LocalS3, runs: dict[int, tuple[Path, Any]]) -> None:
    bucket = s3.create_bucket("kmeans-it")
    store = Store(S3Config(endpoint_url=s3.endpoint_url, region="us-east-1"))
    write_dataset(store, f"s3://{bucket}/run/")
    proc = kmeans(
        2, "--manifest", f"s3://{bucket}/run/_manifest.json", "--output", f"s3://{bucket}/run/kmeans",
        "--clusters", str(K), "--max-iterations", "50", "--seed", "7",
        "--s3-endpoint-url", s3.endpoint_url, "--s3-region", "us-east-1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = store.list_prefix(f"s3://{bucket}/run/kmeans")
    assert f"s3://{bucket}/run/kmeans/_SUCCESS" in listed
    assert sum("/assignments/part-" in u for u in listed) == len(SIZES)
    local = runs[1][0].parent / "from-s3"
    local.mkdir(exist_ok=True)
    (local / "centroids.parquet").write_bytes(
        store.read_bytes(f"s3://{bucket}/run/kmeans/centroids.parquet")
    )
    np.testing.assert_allclose(centroids(local)[2], centroids(runs[1][0])[2], rtol=1e-4, atol=1e-5)
    assert os.environ.get("AWS_ENDPOINT_URL_S3") == s3.endpoint_url
