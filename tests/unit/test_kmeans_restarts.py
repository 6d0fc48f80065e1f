"""Several k-means++ starts on the init sample (`seeding.best_init`) and the sample Lloyd that ranks them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from vectorpipe_workloads.kmeans import seeding


def blobs(n: int, dim: int, centers: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 6.0, (centers, dim))
    return (means[rng.integers(0, centers, n)] + rng.normal(0.0, 1.0, (n, dim))).astype(np.float32)


def uneven_blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three big and three small unit blobs ten apart: k-means++ often doubles up on a big one."""
    rng = np.random.default_rng(seed)
    centers = [(10.0 * i, 0.0) for i in range(3)] + [(10.0 * i, 10.0) for i in range(3)]
    sizes = [400] * 3 + [20] * 3
    X = np.concatenate(
        [np.array(c) + rng.normal(0.0, 1.0, (s, 2)) for c, s in zip(centers, sizes, strict=True)]
    )
    return X.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


def sample_inertia(X: np.ndarray, C: np.ndarray) -> float:
    x, c = X.astype(np.float64), C.astype(np.float64)
    return float(((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2).min(axis=1).sum())


def test_one_start_is_kmeans_plusplus_bit_for_bit() -> None:
    X = blobs(2000, 7, 5, seed=1)
    for seed in range(3):
        C, info = seeding.best_init(X, 5, seeding.init_streams(seed)[1], n_init=1)
        want = seeding.kmeans_plusplus(X, 5, seeding.init_streams(seed)[1])
        assert C.dtype == np.float32 and C.tobytes() == want.tobytes()
        assert (info.n_init, info.chosen, info.inertias, info.iterations) == (1, 0, [], [])


def test_the_chosen_start_has_the_lowest_sample_inertia_and_depends_only_on_the_seed() -> None:
    X = blobs(1500, 4, 8, seed=2)
    C, info = seeding.best_init(X, 8, np.random.default_rng(5), n_init=5)
    again, info2 = seeding.best_init(X, 8, np.random.default_rng(5), n_init=5)
    assert C.tobytes() == again.tobytes() and info == info2
    # The same starts, drawn in sequence from the same stream and refined one by one.
    rng = np.random.default_rng(5)
    refined = [
        seeding.refine(X.astype(np.float64), seeding.kmeans_plusplus(X, 8, rng), 50)
        for _ in range(5)
    ]
    assert info.inertias == [r[1] for r in refined]
    assert info.iterations == [r[2] for r in refined]
    assert info.chosen == int(np.argmin(info.inertias))
    np.testing.assert_array_equal(C, refined[info.chosen][0].astype(np.float32))
    got = sample_inertia(X, C)
    for _, inertia, _ in refined:
        assert got <= inertia * (1 + 1e-6)
    other, _ = seeding.best_init(X, 8, np.random.default_rng(6), n_init=5)
    assert other.tobytes() != C.tobytes()


def test_ties_go_to_the_earliest_start() -> None:
    # With one cluster every start refines to the sample mean: equal inertias.
    X = blobs(500, 3, 2, seed=3)
    C, info = seeding.best_init(X, 1, np.random.default_rng(0), n_init=4)
    assert len(set(info.inertias)) == 1 and info.chosen == 0
    np.testing.assert_allclose(C[0], X.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-6)


def test_more_starts_escape_the_local_optimum_a_single_start_falls_into() -> None:
    X, truth = uneven_blobs()
    x = X.astype(np.float64)
    true_means = np.array([x[truth == j].mean(axis=0) for j in range(6)])
    _, best_possible, _ = seeding.refine(x, true_means, 50)
    single = [
        seeding.refine(x, seeding.kmeans_plusplus(X, 6, np.random.default_rng(s)), 50)[1]
        for s in range(10)
    ]
    stuck = sum(inertia > best_possible * (1 + 1e-6) for inertia in single)
    assert stuck >= 2, "the data set no longer traps single starts; the test proves nothing"
    for s in range(10):
        C, info = seeding.best_init(X, 6, np.random.default_rng(s), n_init=8)
        assert min(info.inertias) == pytest.approx(best_possible, rel=1e-9)
        labels = np.argmin(((x[:, None, :] - C[None, :, :].astype(np.float64)) ** 2).sum(2), axis=1)
        assert adjusted_rand_score(truth, labels) == 1.0


def test_refine_is_lloyd_to_a_fixed_point() -> None:
    X = blobs(1200, 5, 4, seed=4).astype(np.float64)
    C0 = X[[0, 1, 2, 3]].copy()
    C, inertia, updates = seeding.refine(X, C0, 100, tol=0.0)
    ref = KMeans(4, init=C0, n_init=1, max_iter=100, tol=0.0, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(C, ref.cluster_centers_, rtol=1e-9, atol=1e-9)
    assert inertia == pytest.approx(ref.inertia_, rel=1e-9)
    assert 1 <= updates < 100
    # The cap bounds the updates; with none the centroids are returned as given.
    same, inertia0, none = seeding.refine(X, C0, 0)
    np.testing.assert_array_equal(same, C0)
    assert none == 0 and inertia0 == pytest.approx(sample_inertia(X, C0), rel=1e-12)
    assert seeding.refine(X, C0, 1)[2] == 1


def test_a_cluster_left_empty_keeps_its_centroid() -> None:
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    C0 = np.array([[0.0, 0.0], [5.0, 5.0], [100.0, 100.0]])
    C, inertia, _ = seeding.refine(X, C0, 10)
    np.testing.assert_allclose(C, [[1 / 3, 1 / 3], [5.0, 5.0], [100.0, 100.0]])
    assert inertia == pytest.approx(4 / 3)
    assert np.all(np.isfinite(C))


def test_bad_start_count_is_refused() -> None:
    with pytest.raises(ValueError, match="n_init must be >= 1"):
        seeding.best_init(blobs(10, 2, 2), 2, np.random.default_rng(0), n_init=0)


def test_refine_stops_once_updates_gain_almost_nothing() -> None:
    """On structureless data rows trade places for ever; the tolerance ends that tail."""
    X = np.random.default_rng(5).standard_normal((3000, 8))
    C0 = seeding.kmeans_plusplus(X, 10, np.random.default_rng(0)).astype(np.float64)
    _, exact, capped = seeding.refine(X, C0, 200, tol=0.0)
    _, early, stopped = seeding.refine(X, C0, 200)
    assert stopped < capped
    assert early >= exact and early <= exact * (1 + 1e-2)
