"""Embedders against slow, obvious pure-Python references, plus their invariants.

The references below loop over Python strings and count with dicts; they share
no code with the numba kernels (the column order, canonical choice and hash are
re-derived from the documented definitions), so agreement is a real check.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorpipe_workloads.etl.embed import (
    Embedder,
    HashedEmbedder,
    KmerEmbedder,
    MinHashEmbedder,
    kmer_dim,
    make_embedder,
)
from vectorpipe_workloads.etl.readers import iter_batches

# ---------------------------------------------------------------- references

M64 = (1 << 64) - 1
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "a": "t", "c": "g", "g": "c", "t": "a"}


def revcomp(s: str) -> str:
    return "".join(COMPLEMENT.get(c, c) for c in reversed(s))


def valid_kmers(seq: str, k: int) -> list[str]:
    s = seq.upper()
    return [s[i : i + k] for i in range(len(s) - k + 1) if set(s[i : i + k]) <= set("ACGT")]


@functools.cache
def ref_columns(k: int, canonical: bool) -> dict[str, int]:
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=k)]
    names = sorted({min(x, revcomp(x)) for x in kmers}) if canonical else kmers
    return {name: i for i, name in enumerate(names)}


def ref_kmer(seq: str, k: int, canonical: bool, transform: str) -> list[float]:
    columns = ref_columns(k, canonical)
    counts = [0] * len(columns)
    for x in valid_kmers(seq, k):
        counts[columns[min(x, revcomp(x)) if canonical else x]] += 1
    total = sum(counts)
    if total == 0:
        return [0.0] * len(counts)
    if transform == "clr":
        logs = [math.log(c + 0.5) for c in counts]
        mean = sum(logs) / len(logs)
        return [v - mean for v in logs]
    return [c / total for c in counts]


def splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def ref_hash(kmer: str, canonical: bool, seed: int) -> int:
    if canonical:
        kmer = min(kmer, revcomp(kmer))
    code = 0
    for c in kmer:
        code = code * 4 + "ACGT".index(c)
    return splitmix64(code ^ splitmix64(seed))


def ref_hashed(seq: str, k: int, dim: int, canonical: bool, seed: int) -> list[float]:
    vec = [0.0] * dim
    for x in valid_kmers(seq, k):
        h = ref_hash(x, canonical, seed)
        vec[((h & 0xFFFFFFFF) * dim) >> 32] += -1.0 if h >> 63 else 1.0
    norm = math.sqrt(sum(v * v for v in vec))
    return [v / norm for v in vec] if norm else vec


def ref_minhash(seq: str, k: int, size: int, canonical: bool, seed: int) -> list[float]:
    smallest = sorted({ref_hash(x, canonical, seed) for x in valid_kmers(seq, k)})[:size]
    below_one = np.float32(1 - 2**-24)
    values = [float(min(np.float32((h >> 11) * 2.0**-53), below_one)) for h in smallest]
    return values + [1.0] * (size - len(values))


# ---------------------------------------------------------------- helpers


def pack(reads: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    seq = np.frombuffer("".join(reads).encode(), dtype=np.uint8)
    offsets = np.zeros(len(reads) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in reads], out=offsets[1:])
    return seq, offsets


def random_reads(rng: np.random.Generator, n: int, max_len: int, alphabet: str) -> list[str]:
    letters = np.array(list(alphabet))
    return ["".join(rng.choice(letters, int(rng.integers(0, max_len + 1)))) for _ in range(n)]


reads_strategy = st.lists(st.text("ACGTNacgtnRY-", max_size=60), max_size=10)
EDGE_READS = ["", "A", "AC", "NNNNNNNNNN", "ACGNTACGNT", "acgtACGTnnACGT", "GGGGGGGGGGGG"]


# ---------------------------------------------------------------- kmer


@pytest.mark.parametrize("k", range(2, 9))
def test_kmer_dims(k: int) -> None:
    palindromes = 4 ** (k // 2) if k % 2 == 0 else 0
    assert kmer_dim(k, canonical=True) == (4**k + palindromes) // 2
    assert kmer_dim(k, canonical=False) == 4**k
    assert make_embedder("kmer", k=k).dim == kmer_dim(k)
    out = make_embedder("kmer", k=k).embed(*pack(["ACGTTGCAACGTAGCTAGCTAGCATCGACTAGC"]))
    assert out.shape == (1, kmer_dim(k)) and out.dtype == np.float32
    assert out.flags.c_contiguous
    assert out.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("k", [2, 3])
def test_kmer_feature_names_are_the_reference_columns(k: int) -> None:
    for canonical in (True, False):
        names = KmerEmbedder(k, canonical).feature_names()
        assert names == list(ref_columns(k, canonical))
    assert KmerEmbedder(2).feature_names() == [
        *("AA", "AC", "AG", "AT", "CA", "CC", "CG", "GA", "GC", "TA")
    ]


@settings(max_examples=60, deadline=None)
@given(
    reads=reads_strategy,
    k=st.integers(2, 5),
    canonical=st.booleans(),
    transform=st.sampled_from(["none", "clr"]),
)
def test_kmer_matches_reference(reads: list[str], k: int, canonical: bool, transform: str) -> None:
    out = make_embedder("kmer", k=k, canonical=canonical, transform=transform).embed(*pack(reads))
    expected = np.array([ref_kmer(r, k, canonical, transform) for r in reads], dtype=np.float64)
    np.testing.assert_allclose(out, expected.reshape(out.shape), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [4, 6, 8])
def test_kmer_matches_reference_on_long_random_reads(k: int) -> None:
    rng = np.random.default_rng(k)
    reads = random_reads(rng, 20, 400, "ACGTACGTACGTN") + EDGE_READS
    for transform in ("none", "clr"):
        out = make_embedder("kmer", k=k, transform=transform).embed(*pack(reads))
        expected = [ref_kmer(r, k, True, transform) for r in reads]
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_kmer_short_and_all_n_reads_are_zero_rows() -> None:
    reads = ["", "ACG", "NNNNNNNN", "ACGNACGN", "ACGTA"]
    for transform in ("none", "clr"):
        out = make_embedder("kmer", k=4, transform=transform).embed(*pack(reads))
        assert not out[:4].any()
        assert out[4].any()


def test_kmer_skips_windows_with_n() -> None:
    # AAAANCCCC: only AAAA and CCCC are valid 4-mers; canonical CCCC is GGGG.
    (row,) = KmerEmbedder(4, canonical=False).embed(*pack(["AAAANCCCC"]))
    names = KmerEmbedder(4, canonical=False).feature_names()
    assert {names[i]: row[i] for i in np.flatnonzero(row)} == {"AAAA": 0.5, "CCCC": 0.5}


@settings(max_examples=40, deadline=None)
@given(reads=reads_strategy, k=st.integers(2, 8))
def test_kmer_rows_sum_to_one_or_zero_and_clr_to_zero(reads: list[str], k: int) -> None:
    seq, offsets = pack(reads)
    freq = KmerEmbedder(k).embed(seq, offsets)
    has_kmer = np.array([bool(valid_kmers(r, k)) for r in reads], dtype=bool)
    np.testing.assert_allclose(freq.sum(axis=1), has_kmer.astype(float), atol=1e-5)
    clr = KmerEmbedder(k, transform="clr").embed(seq, offsets)
    np.testing.assert_allclose(clr.sum(axis=1), 0.0, atol=1e-6 * kmer_dim(k) + 1e-4)


# ---------------------------------------------------------------- hashed


@settings(max_examples=60, deadline=None)
@given(
    reads=reads_strategy,
    k=st.integers(1, 31),
    dim=st.sampled_from([1, 2, 7, 100, 256]),
    canonical=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_hashed_matches_reference(
    reads: list[str], k: int, dim: int, canonical: bool, seed: int
) -> None:
    embedder = make_embedder("hashed", k=k, dim=dim, canonical=canonical, seed=seed)
    out = embedder.embed(*pack(reads))
    expected = np.array([ref_hashed(r, k, dim, canonical, seed) for r in reads])
    np.testing.assert_allclose(out, expected.reshape(out.shape), rtol=1e-5, atol=1e-6)


def test_hashed_defaults_rows_and_seed() -> None:
    embedder = make_embedder("hashed", k=15)
    assert embedder.dim == 100
    rng = np.random.default_rng(3)
    reads = [*random_reads(rng, 30, 200, "ACGT"), "", "ACGT", "N" * 40]
    out = embedder.embed(*pack(reads))
    norms = np.linalg.norm(out, axis=1)
    expected = [1.0 if valid_kmers(r, 15) else 0.0 for r in reads]
    # Signed counts can cancel exactly, so a read with k-mers may still be zero.
    assert all(
        n == pytest.approx(e, abs=1e-5) or n == 0.0 for n, e in zip(norms, expected, strict=True)
    )
    assert not out[-3:].any()
    other = make_embedder("hashed", k=15, seed=1).embed(*pack(reads))
    assert not np.allclose(out[:30], other[:30])
    np.testing.assert_array_equal(out, make_embedder("hashed", k=15).embed(*pack(reads)))


# ---------------------------------------------------------------- minhash


@settings(max_examples=60, deadline=None)
@given(
    reads=reads_strategy,
    k=st.integers(1, 31),
    size=st.sampled_from([1, 3, 16, 64]),
    canonical=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_minhash_matches_reference(
    reads: list[str], k: int, size: int, canonical: bool, seed: int
) -> None:
    embedder = make_embedder("minhash", k=k, sketch_size=size, canonical=canonical, seed=seed)
    out = embedder.embed(*pack(reads))
    expected = np.array([ref_minhash(r, k, size, canonical, seed) for r in reads])
    np.testing.assert_array_equal(out, expected.reshape(out.shape).astype(np.float32))


def test_minhash_rows_sorted_in_unit_interval_and_padded() -> None:
    rng = np.random.default_rng(5)
    reads = [*random_reads(rng, 40, 150, "ACGTN"), "", "ACGT" * 3, "N" * 30]
    out = make_embedder("minhash", k=21).embed(*pack(reads))
    assert out.shape == (len(reads), 64)
    assert np.all(np.diff(out, axis=1) >= 0)
    assert np.all((out >= 0) & (out <= 1))
    for row, read in zip(out, reads, strict=True):
        distinct = {min(x, revcomp(x)) for x in valid_kmers(read, 21)}
        assert int(np.sum(row < 1.0)) == min(64, len(distinct))
    assert np.all(out[-3:] == 1.0)


# ---------------------------------------------------------------- shared invariants

CANONICAL_EMBEDDERS = [
    pytest.param(lambda: make_embedder("kmer", k=4), id="kmer4"),
    pytest.param(lambda: make_embedder("kmer", k=5, transform="clr"), id="kmer5-clr"),
    pytest.param(lambda: make_embedder("hashed", k=15), id="hashed15"),
    pytest.param(lambda: make_embedder("hashed", k=4, dim=16, seed=9), id="hashed4"),
    pytest.param(lambda: make_embedder("minhash", k=21), id="minhash21"),
    pytest.param(lambda: make_embedder("minhash", k=5, sketch_size=8), id="minhash5"),
]


@pytest.mark.parametrize("factory", CANONICAL_EMBEDDERS)
def test_reverse_complement_invariance(factory: object) -> None:
    embedder: Embedder = factory()  # type: ignore[operator]
    rng = np.random.default_rng(11)
    reads = random_reads(rng, 50, 200, "ACGTACGTACGTNacgt") + EDGE_READS
    forward = embedder.embed(*pack(reads))
    backward = embedder.embed(*pack([revcomp(r) for r in reads]))
    np.testing.assert_allclose(forward, backward, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("factory", CANONICAL_EMBEDDERS)
def test_edge_inputs(factory: object) -> None:
    embedder: Embedder = factory()  # type: ignore[operator]
    assert isinstance(embedder, Embedder)
    empty = embedder.embed(np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64))
    assert empty.shape == (0, embedder.dim) and empty.dtype == np.float32
    # Offsets need not start at 0: a slice of a bigger batch embeds the same.
    seq, offsets = pack(["ACGTACGTAAACCCGGGTTTACGATCGATCGATCGACTTTAGC", "GGGATTACA" * 5])
    whole = embedder.embed(seq, offsets)
    np.testing.assert_array_equal(embedder.embed(seq, offsets[1:]), whole[1:])
    with pytest.raises(TypeError):
        embedder.embed(seq.astype(np.int64), offsets)
    with pytest.raises(TypeError):
        embedder.embed(seq, offsets.astype(np.int32))
    with pytest.raises(ValueError, match="offsets"):
        embedder.embed(seq, offsets[::-1].copy())
    with pytest.raises(ValueError, match="offsets"):
        embedder.embed(seq[:5], offsets)


def test_embedding_from_threads_matches_serial() -> None:
    rng = np.random.default_rng(2)
    seq, offsets = pack(random_reads(rng, 2000, 150, "ACGTN"))
    embedder = make_embedder("kmer", k=4)
    serial = embedder.embed(seq, offsets)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: embedder.embed(seq, offsets), range(8)))
    for result in results:
        np.testing.assert_array_equal(result, serial)


def test_reader_to_embedder(tmp_path: Path) -> None:
    reads = ["ACGTACGTTTGA", "nnnACGTAcgt", "", "GATTACA"]
    path = tmp_path / "r.fq"
    path.write_text("".join(f"@r{i}\n{s}\n+\n{'I' * len(s)}\n" for i, s in enumerate(reads)))
    (batch,) = iter_batches(path)
    out = make_embedder("kmer", k=3).embed(batch.seq, batch.offsets)
    np.testing.assert_allclose(out, [ref_kmer(r, 3, True, "none") for r in reads], atol=1e-6)


# ---------------------------------------------------------------- factory


def test_factory_builds_each_method() -> None:
    assert isinstance(make_embedder("kmer", k=4, dim=136), KmerEmbedder)
    hashed = make_embedder("hashed", k=15, dim=64, seed=3)
    assert isinstance(hashed, HashedEmbedder) and (hashed.name, hashed.dim) == ("hashed", 64)
    minhash = make_embedder("minhash", k=21, sketch_size=32)
    assert isinstance(minhash, MinHashEmbedder) and (minhash.name, minhash.dim) == ("minhash", 32)
    assert make_embedder("minhash", k=21).dim == 64
    assert make_embedder("kmer", k=4, seed=5).name == "kmer"


@pytest.mark.parametrize(
    ("method", "kwargs", "message"),
    [
        ("lshvec", {"k": 4}, "unknown embedding method"),
        ("kmer", {"k": 1}, "k must be in 2..8"),
        ("kmer", {"k": 9}, "k must be in 2..8"),
        ("kmer", {"k": 4, "dim": 100}, "dim is derived"),
        ("kmer", {"k": 4, "sketch_size": 8}, "sketch_size does not apply"),
        ("kmer", {"k": 4, "transform": "log"}, "transform"),
        ("hashed", {"k": 32}, "k must be in 1..31"),
        ("hashed", {"k": 0}, "k must be in 1..31"),
        ("hashed", {"k": 15, "dim": 0}, "dim must be"),
        ("hashed", {"k": 15, "transform": "clr"}, "only applies to kmer"),
        ("hashed", {"k": 15, "sketch_size": 8}, "sketch_size does not apply"),
        ("minhash", {"k": 21, "sketch_size": 0}, "sketch_size must be"),
        ("minhash", {"k": 21, "dim": 10}, "dim equals sketch_size"),
        ("minhash", {"k": 40}, "k must be in 1..31"),
    ],
)
def test_factory_rejects_bad_parameters(method: str, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_embedder(method, **kwargs)  # type: ignore[arg-type]


def test_kmer_counts_palindromes_once() -> None:
    # ACGT is its own reverse complement; AAAA/TTTT share a column.
    counts = Counter(valid_kmers("ACGTTTTT", 4))
    assert counts == Counter({"ACGT": 1, "CGTT": 1, "GTTT": 1, "TTTT": 2})
    (row,) = KmerEmbedder(4).embed(*pack(["ACGTTTTT"]))
    names = KmerEmbedder(4).feature_names()
    got = {names[i]: round(float(row[i]) * 6) for i in np.flatnonzero(row)}
    assert got == {"ACGT": 1, "AACG": 1, "AAAC": 1, "AAAA": 2}
