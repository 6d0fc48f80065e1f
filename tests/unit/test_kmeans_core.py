"""The k-means numerics against brute force and scikit-learn, on one process."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorpipe_workloads.kmeans import core


def blobs(n: int, dim: int, centers: int, seed: int = 0, spread: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, spread, (centers, dim))
    labels = rng.integers(0, centers, n)
    return (means[labels] + rng.normal(0.0, 1.0, (n, dim))).astype(np.float32)


def brute_force(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    d: np.ndarray = (
        (X.astype(np.float64)[:, None, :] - C.astype(np.float64)[None, :, :]) ** 2
    ).sum(axis=2)
    return d


@pytest.mark.parametrize("k", [1, 3, 4, 7, 9])
@pytest.mark.parametrize("method", ["hamerly", "fused", "gemm"])
def test_assignment_equals_brute_force(k: int, method: core.Method) -> None:
    rng = np.random.default_rng(k)
    X = rng.normal(size=(3001, 19)).astype(np.float32)
    C = rng.normal(size=(k, 19)).astype(np.float32)
    d = brute_force(X, C)
    best = d.argmin(axis=1)
    # Rows whose two nearest centroids are within float32 noise may go either way.
    part = np.sort(d, axis=1)
    clear = part[:, 1] - part[:, 0] > 1e-3 if k > 1 else np.ones(len(X), bool)

    with core.Engine(X, threads=2, method=method, block_rows=500) as engine:
        res = engine.sweep(C)
    assert np.array_equal(engine.labels[clear], best[clear])
    np.testing.assert_allclose(
        engine.dist, d[np.arange(len(X)), engine.labels], rtol=1e-4, atol=1e-3
    )
    assert res.inertia == pytest.approx(float(d.min(axis=1).sum()), rel=1e-5)
    expected_sums = np.zeros((k, 19))
    np.add.at(expected_sums, engine.labels, X.astype(np.float64))
    np.testing.assert_allclose(res.sums, expected_sums, rtol=1e-10, atol=1e-9)
    assert np.array_equal(res.counts, np.bincount(engine.labels, minlength=k))

    labels, dist = core.assign(X, C, chunk_rows=700)
    assert np.array_equal(labels[clear], best[clear])
    np.testing.assert_allclose(dist, d.min(axis=1), rtol=1e-4, atol=1e-3)


def test_accumulate_matches_add_at() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1000, 6)).astype(np.float32)
    labels = rng.integers(0, 4, 1000).astype(np.int32)
    sums, counts = core.accumulate(X, labels, 5)
    expected = np.zeros((5, 6))
    np.add.at(expected, labels, X.astype(np.float64))
    np.testing.assert_allclose(sums, expected, rtol=1e-12)
    assert counts.tolist() == np.bincount(labels, minlength=5).tolist()


def test_sweep_does_not_depend_on_threads_or_method_for_sums() -> None:
    X = blobs(20000, 12, 5, seed=3)
    C = X[:5].copy()
    results = []
    for threads in (1, 2, 3):
        with core.Engine(X, threads=threads, block_rows=1024) as e:
            results.append(e.sweep(C))
    for r in results[1:]:
        assert np.array_equal(r.sums, results[0].sums)
        assert np.array_equal(r.counts, results[0].counts)
        assert r.inertia == results[0].inertia


@pytest.mark.parametrize("iterations", [1, 3, 10])
def test_inertia_matches_scikit_learn(iterations: int) -> None:
    from sklearn.cluster import KMeans

    X = blobs(6000, 10, 6, seed=11, spread=3.0)
    C0 = core.kmeans_plusplus(X[:1500], 6, 42)
    with core.Engine(X, threads=2) as engine:
        ours = core.lloyd(engine, C0, iterations, 0.0)
    ref = KMeans(6, init=C0, n_init=1, max_iter=iterations, algorithm="lloyd", tol=0).fit(X)
    assert ours.inertia[-1] == pytest.approx(ref.inertia_, rel=1e-4)
    assert ours.iterations == ref.n_iter_
    np.testing.assert_allclose(ours.centroids, ref.cluster_centers_, rtol=1e-4, atol=1e-4)
    assert np.array_equal(engine.labels, ref.labels_)


def test_inertia_is_non_increasing_and_history_consistent() -> None:
    X = blobs(5000, 8, 4, seed=2, spread=2.0)
    with core.Engine(X) as engine:
        res = core.lloyd(engine, core.kmeans_plusplus(X, 7, 0), 50, 0.0)
    assert len(res.inertia) == res.iterations + 1
    assert all(b <= a * (1 + 1e-6) for a, b in zip(res.inertia, res.inertia[1:], strict=False))
    assert int(res.sizes.sum()) == len(X)
    assert res.sizes.tolist() == np.bincount(engine.labels, minlength=7).tolist()
    # Sums carried over from sweep to sweep still equal sums made afresh.
    with engine:
        carried = engine.sweep(res.centroids)
    fresh_sums, fresh_counts = core.accumulate(X, engine.labels, 7)
    np.testing.assert_allclose(carried.sums, fresh_sums, rtol=1e-11, atol=1e-9)
    assert carried.counts.tolist() == fresh_counts.tolist()


def test_kmeans_plusplus_is_deterministic_in_the_seed() -> None:
    X = blobs(4000, 5, 8, seed=4)
    a = core.kmeans_plusplus(X, 8, 123)
    b = core.kmeans_plusplus(X, 8, 123)
    c = core.kmeans_plusplus(X, 8, 124)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # Every centroid is a sample row, and well separated blobs each get one.
    rows = {tuple(r) for r in X}
    assert all(tuple(r) in rows for r in a)
    means = np.array([X[core.assign(X, a)[0] == i].mean(axis=0) for i in range(8)])
    assert len({tuple(np.round(m)) for m in means}) == 8


def test_sample_indices_depend_only_on_rows_k_and_seed() -> None:
    a = core.sample_indices(1_000_000, 20, 7)
    assert len(a) == 20000 and np.all(np.diff(a) > 0) and a[-1] < 1_000_000
    assert np.array_equal(a, core.sample_indices(1_000_000, 20, 7))
    assert not np.array_equal(a, core.sample_indices(1_000_000, 20, 8))
    assert len(core.sample_indices(500, 20, 7)) == 500
    assert len(core.sample_indices(10**7, 3000, 7)) == 30000


def test_empty_cluster_takes_the_farthest_row() -> None:
    rng = np.random.default_rng(0)
    near = rng.normal(0.0, 0.1, (200, 2))
    X = np.concatenate([near, [[5.0, 5.0], [9.0, 0.0]]]).astype(np.float32)
    # Centroid 2 sits where no row will ever be nearest to it.
    C0 = np.array([[0.0, 0.0], [9.0, 0.0], [-100.0, -100.0]], np.float32)
    seen: list[core.IterationStats] = []
    with core.Engine(X) as engine:
        res = core.lloyd(engine, C0, 1, 0.0, on_iteration=seen.append)
    assert seen[0].empty == 1
    # Row 200 ([5, 5]) is the farthest from its centroid ([0, 0]): it seeds cluster 2.
    np.testing.assert_allclose(res.centroids[2], [5.0, 5.0])
    np.testing.assert_allclose(res.centroids[0], near.mean(axis=0), atol=1e-5)
    assert res.sizes.tolist() == [200, 1, 1]


def test_farthest_breaks_ties_by_lower_index() -> None:
    values = np.array([1.0, 3.0, 2.0, 3.0, 3.0, 0.5])
    index = np.array([10, 14, 11, 12, 13, 9])
    assert core.farthest(values, index, 2).tolist() == [3, 4]
    assert core.farthest(values, index, 4).tolist() == [3, 4, 1, 2]
    assert core.farthest(values, index, 0).tolist() == []
    assert core.farthest(values, index, 99).tolist() == [3, 4, 1, 2, 0, 5]


def test_relocation_moves_the_point_out_of_its_old_cluster() -> None:
    sums = np.array([[10.0, 10.0], [0.0, 0.0]])
    counts = np.array([4, 0])
    core.relocate_empty(sums, counts, [1], np.array([[4.0, 1.0]]), [0])
    assert counts.tolist() == [3, 1]
    assert sums.tolist() == [[6.0, 9.0], [4.0, 1.0]]


def test_tolerance_is_scikit_learns() -> None:
    X = blobs(3000, 7, 3, seed=9)
    with core.Engine(X) as e:
        s1, s2, bad = e.moments(X[:100].mean(axis=0, dtype=np.float64))
    assert bad == 0
    expected = float(np.var(X.astype(np.float64), axis=0).mean() * 1e-3)
    assert core.tolerance(len(X), s1, s2, 1e-3) == pytest.approx(expected, rel=1e-9)
    assert core.tolerance(len(X), s1, s2, 0.0) == 0.0
    assert e.xnorm is not None
    np.testing.assert_allclose(e.xnorm, (X.astype(np.float64) ** 2).sum(axis=1), rtol=1e-6)


def test_moments_count_non_finite_rows() -> None:
    X = np.ones((10, 3), np.float32)
    X[2, 1] = np.nan
    X[7, 0] = np.inf
    with core.Engine(X) as e:
        assert e.moments(np.zeros(3))[2] == 2


def test_stops_on_tolerance_and_at_max_iterations() -> None:
    X = blobs(4000, 6, 5, seed=1, spread=1.5)
    C0 = core.kmeans_plusplus(X, 5, 3)
    with core.Engine(X) as e:
        s1, s2, _ = e.moments(np.zeros(6))
        loose = core.lloyd(e, C0, 100, core.tolerance(len(X), s1, s2, 1.0))
        capped = core.lloyd(e, C0, 2, 0.0)
        exact = core.lloyd(e, C0, 300, 0.0)
        tight = core.lloyd(e, C0, 300, core.tolerance(len(X), s1, s2, 1e-4))
    assert loose.converged and loose.iterations < exact.iterations
    assert loose.history[-1].shift <= core.tolerance(len(X), s1, s2, 1.0)
    assert all(h.shift > core.tolerance(len(X), s1, s2, 1.0) for h in loose.history[:-1])
    assert not capped.converged and capped.iterations == 2
    assert exact.converged and exact.history[-1].shift == 0.0
    assert tight.converged and loose.iterations <= tight.iterations <= exact.iterations


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 60),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_lloyd_invariants_on_small_inputs(n: int, k: int, seed: int) -> None:
    k = min(k, n)
    rng = np.random.default_rng(seed)
    # Few distinct values: duplicates, ties and empty clusters are common here.
    X = rng.integers(0, 3, (n, 2)).astype(np.float32)
    C0 = core.kmeans_plusplus(X, k, seed)
    with core.Engine(X, threads=2, block_rows=7) as e:
        res = core.lloyd(e, C0, 20, 0.0)
    assert int(res.sizes.sum()) == n
    assert np.all(np.isfinite(res.centroids))
    assert e.labels.min() >= 0 and e.labels.max() < k
    d = brute_force(X, res.centroids)
    np.testing.assert_allclose(e.dist, d.min(axis=1), atol=1e-4)
