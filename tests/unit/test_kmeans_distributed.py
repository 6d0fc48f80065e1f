"""The distributed algorithm and the output exchange on P ranks simulated by threads.

`ThreadComm` implements the few mpi4py calls the package makes, with every
rank a thread of this process, so rank-count independence can be checked in
milliseconds; `tests/integration/test_kmeans_mpi.py` runs the real mpirun.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow.parquet as pq
import pytest

from vectorpipe_workloads import manifest, shards
from vectorpipe_workloads.etl import shard_writers
from vectorpipe_workloads.kmeans import core, distributed, seeding, shard_io
from vectorpipe_workloads.storage import Store

R = TypeVar("R")


class _Done:
    def Wait(self) -> None:  # noqa: N802 - mpi4py's name
        pass


class ThreadComm:
    """mpi4py's Comm, as far as this package uses it, for ranks that are threads."""

    def __init__(self, size: int, rank: int, shared: dict[str, Any]) -> None:
        self.size, self.rank, self.shared = size, rank, shared

    def Get_rank(self) -> int:  # noqa: N802
        return self.rank

    def Get_size(self) -> int:  # noqa: N802
        return self.size

    def allgather(self, obj: Any) -> list[Any]:
        slots, barrier = self.shared["slots"], self.shared["barrier"]
        slots[self.rank] = obj
        barrier.wait()
        out = list(slots)
        barrier.wait()
        return out

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return self.allgather(obj)[root]

    def Barrier(self) -> None:  # noqa: N802
        self.shared["barrier"].wait()

    def Allreduce(self, send: Any, recv: Any) -> None:  # noqa: N802
        parts = self.allgather(np.array(send, copy=True))
        total = parts[0].copy()
        for p in parts[1:]:
            total += p
        recv[...] = total

    def Allgatherv(self, send: Any, spec: Any) -> None:  # noqa: N802
        recv, (counts, displs) = spec
        flat = recv.reshape(-1)
        for r, part in enumerate(self.allgather(np.array(send, copy=True).reshape(-1))):
            assert part.size == counts[r]
            flat[displs[r] : displs[r] + counts[r]] = part

    def Isend(self, buf: Any, dest: int, tag: int = 0) -> _Done:  # noqa: N802
        self.shared["queues"][(self.rank, dest)].put((tag, np.array(buf, copy=True)))
        return _Done()

    def Recv(self, buf: Any, source: int, tag: int = 0) -> None:  # noqa: N802
        got_tag, data = self.shared["queues"][(source, self.rank)].get(timeout=60)
        assert got_tag == tag and data.shape == buf.shape
        buf[...] = data


def run_ranks(size: int, fn: Callable[[ThreadComm], R]) -> list[R]:
    shared: dict[str, Any] = {
        "slots": [None] * size,
        "barrier": threading.Barrier(size, timeout=120),
        "queues": {(a, b): queue.Queue() for a in range(size) for b in range(size)},
    }
    results: list[Any] = [None] * size
    errors: list[BaseException] = []

    def main(rank: int) -> None:
        try:
            results[rank] = fn(ThreadComm(size, rank, shared))
        except BaseException as e:
            errors.append(e)
            shared["barrier"].abort()

    threads = [threading.Thread(target=main, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def blobs(n: int, dim: int, centers: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 6.0, (centers, dim))
    return (means[rng.integers(0, centers, n)] + rng.normal(0.0, 1.0, (n, dim))).astype(np.float32)


def test_rank_bounds_cover_rows_once_and_balance() -> None:
    for n, p in [(10, 3), (3, 5), (0, 2), (1000, 7)]:
        b = distributed.rank_bounds(n, p)
        assert b[0][0] == 0 and b[-1][1] == n
        assert all(b[i][1] == b[i + 1][0] for i in range(p - 1))
        sizes = [hi - lo for lo, hi in b]
        assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("ranks", [2, 3, 5])
def test_fit_does_not_depend_on_the_number_of_ranks(ranks: int) -> None:
    X = blobs(6000, 9, 6, seed=1)

    def fit(comm: ThreadComm) -> distributed.FitResult:
        lo, hi = distributed.rank_bounds(len(X), comm.Get_size())[comm.Get_rank()]
        return distributed.fit(comm, X[lo:hi].copy(), len(X), 6, 50, 1e-4, seed=3, threads=2)

    (one,) = run_ranks(1, fit)
    many = run_ranks(ranks, fit)
    for r in many:
        np.testing.assert_allclose(r.centroids, one.centroids, rtol=1e-4, atol=1e-5)
        assert r.iterations == one.iterations and r.converged == one.converged
        assert r.sizes.tolist() == one.sizes.tolist()
        assert r.inertia[-1] == pytest.approx(one.inertia[-1], rel=1e-6)
    assert np.array_equal(np.concatenate([r.labels for r in many]), one.labels)
    assert one.sample_rows == 6000


def test_fit_matches_core_lloyd_from_the_same_start() -> None:
    X = blobs(3000, 5, 4, seed=2)
    (res,) = run_ranks(1, lambda c: distributed.fit(c, X, len(X), 4, 30, 0.0, seed=8))
    _, rng = core.init_streams(8)
    sample = X[core.sample_indices(len(X), 4, 8)]
    with core.Engine(X) as e:
        ref = core.lloyd(e, core.kmeans_plusplus(sample, 4, rng), 30, 0.0)
    assert np.array_equal(res.centroids, ref.centroids)
    assert res.inertia == ref.inertia


def test_global_farthest_rows_do_not_depend_on_ranks() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(101, 3)).astype(np.float32)
    C = X[:4].copy()
    with core.Engine(X) as e:
        e.sweep(C)
        e.dist[[7, 50, 90]] = e.dist.max() + 1.0  # a three-way tie across ranks
        want_points, want_labels = core.LocalReducer().farthest(e, 5)
        dist = e.dist.copy()

    def farthest(comm: ThreadComm) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = distributed.rank_bounds(len(X), comm.Get_size())[comm.Get_rank()]
        with core.Engine(X[lo:hi].copy()) as local:
            local.sweep(C)
            local.dist[:] = dist[lo:hi]
            return distributed.MPIReducer(comm, lo).farthest(local, 5)

    for points, labels in run_ranks(4, farthest):
        np.testing.assert_array_equal(points, want_points)
        np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_array_equal(want_points[:3], X[[7, 50, 90]])


def test_non_finite_input_fails_on_every_rank() -> None:
    X = blobs(100, 3, 2)
    X[77, 2] = np.nan

    def fit(comm: ThreadComm) -> str:
        lo, hi = distributed.rank_bounds(len(X), comm.Get_size())[comm.Get_rank()]
        try:
            distributed.fit(comm, X[lo:hi].copy(), len(X), 2, 5, 0.0, seed=0)
        except distributed.NonFiniteInputError as e:
            return str(e)
        return "no error"

    assert run_ranks(3, fit) == ["1 rows have NaN or infinite embedding values"] * 3


def make_dataset(root: Path, sizes: list[int], dim: int = 4) -> tuple[shard_io.Dataset, np.ndarray]:
    store = Store()
    n = sum(sizes)
    X = blobs(n, dim, 3, seed=5)
    infos, at = [], 0
    for j, size in enumerate(sizes):
        ids = [f"read-{i}" for i in range(at, at + size)]
        infos.append(
            shard_writers.write_parquet_shard(
                store, str(root), j, shards.make_table(ids, "s", X[at : at + size])
            )
        )
        at += size
    m = manifest.Manifest(
        format="parquet", dim=dim, rows=n, embedding={"method": "test"}, shards=infos,
        sources=[], schema=shards.schema_description(dim),
    )  # fmt: skip
    manifest.write_manifest(store, str(root), m)
    return shard_io.open_dataset(store, str(root)), X


def test_read_rows_slices_only_overlapping_shards(tmp_path: Path) -> None:
    ds, X = make_dataset(tmp_path, [5, 0, 7, 1, 11])
    assert ds.overlapping(4, 13) == [(0, 4, 5), (2, 0, 7), (3, 0, 1)]
    for lo, hi in [(0, 24), (4, 13), (12, 13), (6, 6)]:
        np.testing.assert_array_equal(shard_io.read_rows(Store(), ds, lo, hi), X[lo:hi])
    assert shard_io.read_ids(Store(), ds, 11, 14).to_pylist() == ["read-11", "read-12", "read-13"]
    assert shard_io.open_dataset(Store(), ds.manifest_uri).base_uri == ds.base_uri


def test_read_rows_decodes_only_the_row_groups_it_needs(tmp_path: Path) -> None:
    ds, X = make_dataset(tmp_path, [11, 9])
    for j in range(2):
        path = tmp_path / shards.shard_name(j)
        pq.write_table(pq.read_table(path), path, row_group_size=3)
    assert pq.ParquetFile(tmp_path / "part-00000.parquet").num_row_groups == 4
    for lo, hi in [(0, 20), (4, 5), (5, 13), (10, 11), (19, 20)]:
        np.testing.assert_array_equal(shard_io.read_rows(Store(), ds, lo, hi), X[lo:hi])


def test_missing_manifest_and_bad_shard_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(shard_io.InputError, match=r"no manifest at .*: stage 1 has not committed"):
        shard_io.open_dataset(Store(), str(tmp_path / "nothing"))
    ds, _ = make_dataset(tmp_path, [3, 4])
    (tmp_path / "part-00001.parquet").write_bytes(b"not parquet")
    with pytest.raises(shard_io.InputError, match=r"cannot read shard .*part-00001\.parquet"):
        shard_io.read_rows(Store(), ds, 0, 7)
    np.testing.assert_array_equal(shard_io.read_rows(Store(), ds, 0, 3).shape, (3, 4))


@pytest.mark.parametrize("ranks", [1, 2, 3, 6, 30])
def test_assignments_are_sharded_like_the_input(tmp_path: Path, ranks: int) -> None:
    ds, _ = make_dataset(tmp_path / "in", [5, 0, 7, 1, 11])
    labels = np.arange(ds.rows, dtype=np.int32) % 3
    dist = (np.arange(ds.rows) / 10).astype(np.float32)
    out = str(tmp_path / "out")

    def write(comm: ThreadComm) -> list[int]:
        lo, hi = distributed.rank_bounds(ds.rows, comm.Get_size())[comm.Get_rank()]
        mine = shard_io.exchange_assignments(comm, ds, labels[lo:hi], dist[lo:hi])
        shard_io.write_assignments(Store(), out, ds, mine)
        return sorted(mine)

    written = run_ranks(ranks, write)
    assert sorted(j for w in written for j in w) == list(range(5))
    at = 0
    for j, info in enumerate(ds.manifest.shards):
        t = pq.read_table(tmp_path / "out" / "assignments" / shards.shard_name(j))
        assert t.schema.equals(shard_io.assignments_schema())
        assert t.column("read_id").to_pylist() == [f"read-{i}" for i in range(at, at + info.rows)]
        assert t.column("cluster").to_pylist() == labels[at : at + info.rows].tolist()
        assert t.column("distance").to_pylist() == dist[at : at + info.rows].tolist()
        at += info.rows


def test_summary_files(tmp_path: Path) -> None:
    store, out = Store(), str(tmp_path)
    C = np.arange(6, dtype=np.float32).reshape(3, 2)
    sizes = np.array([4, 0, 2])
    shard_io.write_centroids(store, out, C, sizes)
    t = pq.read_table(tmp_path / shard_io.CENTROIDS_NAME)
    assert t.schema.equals(shard_io.centroids_schema(2))
    assert t.column("centroid").to_pylist() == C.tolist()
    shard_io.write_centroids_csv(store, out, C, sizes)
    assert (tmp_path / shard_io.CENTROIDS_CSV).read_text().splitlines()[:2] == [
        "cluster,size,c0,c1",
        "0,4,0,1",
    ]
    import pyarrow as pa

    shard_io.write_rank_csv(store, out, 3, pa.array(["a", "b,c"]), np.array([1, 2], np.int32))
    assert (tmp_path / "clustering_results_rank_0003.csv").read_text().splitlines() == [
        "read_id,cluster",
        '"a",1',
        '"b,c",2',
    ]
    shard_io.write_rank_csv(store, out, 4, pa.array(["a", "b"]), np.array([1, 2], np.int32))
    assert (
        tmp_path / "clustering_results_rank_0004.csv"
    ).read_text() == "read_id,cluster\na,1\nb,2\n"
    shard_io.write_success(store, out)
    shard_io.clear_success(store, out)
    assert not (tmp_path / shard_io.SUCCESS_NAME).exists()


@pytest.mark.parametrize("ranks", [1, 3])
def test_fit_seeds_from_the_best_of_n_init_starts(ranks: int) -> None:
    X = blobs(2400, 4, 7, seed=6)

    def fit(comm: ThreadComm) -> distributed.FitResult:
        lo, hi = distributed.rank_bounds(len(X), comm.Get_size())[comm.Get_rank()]
        return distributed.fit(comm, X[lo:hi].copy(), len(X), 7, 30, 0.0, seed=4, n_init=3)

    results = run_ranks(ranks, fit)
    sample = X[core.sample_indices(len(X), 7, 4)]
    initial, info = seeding.best_init(sample, 7, core.init_streams(4)[1], n_init=3)
    with core.Engine(X) as e:
        ref = core.lloyd(e, initial, 30, 0.0)
    for r in results:
        assert r.init == info and r.init.n_init == 3 and len(r.init.inertias) == 3
        np.testing.assert_allclose(r.centroids, ref.centroids, rtol=1e-5, atol=1e-5)
        assert r.inertia[-1] == pytest.approx(ref.inertia[-1], rel=1e-6)
    if ranks == 1:
        assert np.array_equal(results[0].centroids, ref.centroids)
    with pytest.raises(ValueError, match="n_init must be >= 1"):
        run_ranks(1, lambda c: distributed.fit(c, X, len(X), 7, 30, 0.0, seed=4, n_init=0))


def test_cli_takes_n_init_and_records_the_starts_in_metrics(tmp_path: Path) -> None:
    import json

    from vectorpipe_workloads.kmeans import cli

    parser = cli.build_parser()
    base = ["--manifest", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    assert parser.parse_args([*base, "--clusters", "3"]).n_init == 1
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--clusters", "3", "--n-init", "0"])
    make_dataset(tmp_path / "in", [40, 25, 35])
    args = parser.parse_args([*base, "--clusters", "3", "--n-init", "3", "--threads", "1"])
    assert run_ranks(1, lambda comm: cli.run(comm, args)) == [cli.EXIT_OK]
    m = json.loads((tmp_path / "out" / shard_io.METRICS_NAME).read_text())
    assert m["n_init"] == 3
    assert m["method"] == "k-means (Lloyd, best of 3 k-means++ starts)"
    assert len(m["init_sample_inertia"]) == 3 and len(m["init_sample_iterations"]) == 3
    assert m["init_sample_inertia"][m["init_start"]] == min(m["init_sample_inertia"])
