"""Hamerly's bounded sweep against plain Lloyd: same labels at every iteration, fewer rows scanned."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorpipe_workloads.kmeans import core, hamerly


def brute_force(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    d: np.ndarray = (
        (X.astype(np.float64)[:, None, :] - C.astype(np.float64)[None, :, :]) ** 2
    ).sum(axis=2)
    return d


def data(kind: str, n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "blobs":
        means = rng.normal(0.0, 6.0, (8, dim))
        return (means[rng.integers(0, 8, n)] + rng.normal(0.0, 1.0, (n, dim))).astype(np.float32)
    if kind == "offset":
        # Far from the origin: norms dwarf distances, where float32 rounding bites.
        return (100.0 + rng.normal(0.0, 0.01, (n, dim))).astype(np.float32)
    if kind == "ties":
        return rng.integers(0, 3, (n, dim)).astype(np.float32)
    return rng.normal(size=(n, dim)).astype(np.float32)


def lockstep(X: np.ndarray, C0: np.ndarray, iterations: int, threads: int, block_rows: int) -> int:
    """Both engines sweep the same centroids each iteration; returns rows Hamerly scanned after the first."""
    scanned = 0
    C = C0
    with (
        core.Engine(X, threads=threads, method="hamerly", block_rows=block_rows) as h,
        core.Engine(X, threads=threads, method="fused", block_rows=block_rows) as f,
    ):
        for it in range(iterations):
            rh, rf = h.sweep(C), f.sweep(C)
            assert np.array_equal(h.labels, f.labels), f"labels differ at iteration {it}"
            assert np.array_equal(rh.counts, rf.counts)
            np.testing.assert_allclose(rh.sums, rf.sums, rtol=1e-9, atol=1e-9)
            # Lloyd's inertia sums float32 distances; Hamerly's comes from float64
            # sums, so it must be at least as close to the exact value.
            exact = float(brute_force(X, C)[np.arange(len(X)), f.labels].sum())
            assert abs(rh.inertia - exact) <= abs(rf.inertia - exact) + 1e-9 * exact + 1e-6
            # Both distances are float32 expansions, within the rounding bound of each other.
            xn = (X.astype(np.float64) ** 2).sum(axis=1)
            bound = (
                hamerly.SLACK_PER_DIM
                * (X.shape[1] + 8)
                * (xn + (C.astype(np.float64) ** 2).sum(axis=1).max())
            )
            assert np.all(np.abs(h.dist.astype(np.float64) - f.dist) <= 2 * bound)
            if it:
                scanned += h.scanned
            C = core.update_centroids(rf.sums, rf.counts, C)
    return scanned


@pytest.mark.parametrize("kind", ["blobs", "normal", "offset", "ties"])
@pytest.mark.parametrize("k", [1, 2, 5, 20])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_labels_as_lloyd_every_iteration(kind: str, k: int, seed: int) -> None:
    X = data(kind, 3001, 9, seed)
    C0 = core.kmeans_plusplus(X, k, seed)
    lockstep(X, C0, 8, threads=2, block_rows=700)


def test_skips_most_rows_once_clusters_settle() -> None:
    X = data("blobs", 20000, 16, 3)
    C0 = core.kmeans_plusplus(X, 8, 0)
    scanned = lockstep(X, C0, 6, threads=1, block_rows=4096)
    assert scanned < 0.2 * 5 * len(X)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 80), k=st.integers(1, 7), dim=st.integers(1, 5), seed=st.integers(0, 2**31 - 1)
)
def test_same_labels_on_small_inputs_with_duplicates(n: int, k: int, dim: int, seed: int) -> None:
    k = min(k, n)
    X = data("ties", n, dim, seed)
    lockstep(X, core.kmeans_plusplus(X, k, seed), 6, threads=2, block_rows=7)


def test_full_runs_agree() -> None:
    X = data("blobs", 5000, 12, 4)
    C0 = core.kmeans_plusplus(X, 6, 1)
    results = []
    for method in ("hamerly", "fused"):
        with core.Engine(X, method=method) as e:
            results.append((core.lloyd(e, C0, 30, 0.0), e.labels.copy()))
    (a, la), (b, lb) = results
    assert a.iterations == b.iterations and a.converged == b.converged
    assert np.array_equal(la, lb)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.inertia, b.inertia, rtol=1e-5)
