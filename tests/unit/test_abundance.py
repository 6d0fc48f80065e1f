"""The read-abundance column: k-mer counting, the per-read median, the merge and the wrapper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vectorpipe_api.pipeline import AbundanceSpec, EmbeddingSpec
from vectorpipe_workloads.etl import kmer_counting
from vectorpipe_workloads.etl.embed import make_embedder
from vectorpipe_workloads.etl.embed.abundance import (
    AbundanceParams,
    AbundanceProfile,
    KmerCounter,
    WithAbundance,
    composition_scale,
)
from vectorpipe_workloads.etl.kmer_counting import FileProfile, ProfileMerger, embedder_for
from vectorpipe_workloads.storage import InputFile, S3Config

COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")


def pack(reads: list[str]) -> tuple[np.ndarray, np.ndarray]:
    seq = np.frombuffer("".join(reads).encode(), np.uint8)
    offsets = np.zeros(len(reads) + 1, np.int64)
    np.cumsum([len(r) for r in reads], out=offsets[1:])
    return seq, offsets


def random_dna(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), n))


def canonical_kmers(read: str, k: int) -> list[str]:
    out = []
    for i in range(len(read) - k + 1):
        w = read[i : i + k].upper()
        if set(w) <= set("ACGT"):
            rc = w.translate(COMPLEMENT)[::-1]
            out.append(min(w, rc))
    return out


def profile_of(reads: list[str], params: AbundanceParams, scale: float = 1.0) -> AbundanceProfile:
    counter = KmerCounter(params)
    counter.add(*pack(reads))
    return AbundanceProfile(params, counter.table, counter.added, scale)


def test_scaled_one_medians_match_exact_counts() -> None:
    """With every k-mer kept and a table far larger than the k-mers, the feature is exact."""
    rng = np.random.default_rng(1)
    genome = random_dna(rng, 400)
    reads = [genome[i : i + 60] for i in range(0, 340, 7)]  # overlapping: shared k-mers
    reads += [random_dna(rng, 60) for _ in range(20)]  # singletons
    reads.append(reads[3].translate(COMPLEMENT)[::-1])  # a reverse complement counts too
    reads.append(reads[5][:20] + "N" + reads[5][21:])  # N breaks windows
    params = AbundanceParams(k=15, scaled=1, table_bits=22)
    prof = profile_of(reads, params)
    counts: dict[str, int] = {}
    for r in reads:
        for w in canonical_kmers(r, 15):
            counts[w] = counts.get(w, 0) + 1
    assert prof.added == sum(counts.values())
    got = prof.values(*pack(reads))
    for r, v in zip(reads, got, strict=True):
        med = float(np.median([counts[w] for w in canonical_kmers(r, 15)]))
        want = np.log1p(max(med - 1.0 - prof.background, 0.0))
        assert v == pytest.approx(want, abs=1e-6)
    # Singletons are 0; the tiled genome's reads are above it.
    assert np.all(got[len(reads) - 22 : len(reads) - 2] == 0.0)
    assert got[:10].min() > 0.0


def test_reverse_complement_and_short_reads() -> None:
    rng = np.random.default_rng(2)
    genome = random_dna(rng, 300)
    reads = [genome[i : i + 100] for i in range(0, 200, 10)]
    prof = profile_of(reads, AbundanceParams(k=21, scaled=2, table_bits=20))
    fwd = prof.values(*pack(reads))
    rev = prof.values(*pack([r.translate(COMPLEMENT)[::-1] for r in reads]))
    np.testing.assert_array_equal(fwd, rev)
    short = prof.values(*pack(["ACGT", "", "N" * 50, genome[:20]]))
    np.testing.assert_array_equal(short, np.zeros(4, np.float32))


def test_coverage_orders_the_feature() -> None:
    """Reads of a genome sampled at higher coverage get a larger value, about log(coverage)."""
    rng = np.random.default_rng(3)
    deep, shallow = random_dna(rng, 2000), random_dna(rng, 200_000)
    reads = [deep[s : s + 150] for s in rng.integers(0, 1850, 300)]  # ~22x
    reads += [shallow[s : s + 150] for s in rng.integers(0, 199_850, 300)]  # ~0.2x
    prof = profile_of(reads, AbundanceParams())
    v = prof.values(*pack(reads))
    assert np.median(v[:300]) > np.log(10.0)
    assert np.median(v[300:]) < 0.5
    assert v[:300].min() > v[300:].max() - 1.0


def test_sampling_keeps_about_one_in_scaled() -> None:
    rng = np.random.default_rng(4)
    reads = [random_dna(rng, 200) for _ in range(500)]
    full = KmerCounter(AbundanceParams(k=21, scaled=1))
    full.add(*pack(reads))
    part = KmerCounter(AbundanceParams(k=21, scaled=8))
    part.add(*pack(reads))
    assert full.added == 500 * 180
    assert 0.8 / 8 < part.added / full.added < 1.2 / 8


def test_background_is_subtracted_from_a_crowded_table() -> None:
    """A 256-cell table is swamped by collisions; unique reads still come out near 0."""
    rng = np.random.default_rng(5)
    reads = [random_dna(rng, 150) for _ in range(400)]
    prof = profile_of(reads, AbundanceParams(k=21, scaled=1, table_bits=8))
    assert prof.background == pytest.approx(400 * 130 / 256)
    v = prof.values(*pack(reads))
    assert np.median(v) < 0.3 * np.log1p(prof.background)


def test_counts_saturate_instead_of_wrapping() -> None:
    params = AbundanceParams(k=11, scaled=1, table_bits=8)
    counter = KmerCounter(params)
    top = np.iinfo(counter.table.dtype).max
    counter.table[:] = top - 1
    counter.add(*pack(["ACGTACGTACGTACGTACGTAAAAACCCC"] * 3))
    assert counter.table.min() == top - 1
    assert counter.table.max() == top


def test_merged_file_profiles_equal_one_pass_over_everything() -> None:
    rng = np.random.default_rng(6)
    genome = random_dna(rng, 1000)
    a = [genome[s : s + 120] for s in rng.integers(0, 880, 80)]
    b = [genome[s : s + 120] for s in rng.integers(0, 880, 50)] + [random_dna(rng, 120)]
    spec = AbundanceSpec(k=15, scaled=2, table_bits=16, weight=2.0)
    params = AbundanceParams(k=15, scaled=2, table_bits=16)
    base = make_embedder("kmer", k=3)
    merger = ProfileMerger(spec, base.dim)
    for reads in (a, b):
        counter = KmerCounter(params)
        counter.add(*pack(reads))
        X = base.embed(*pack(reads)).astype(np.float64)
        merger.add(
            FileProfile(counter.table, counter.added, len(reads), len(X), X.sum(0), (X * X).sum(0))
        )
    merged = merger.profile()
    whole = profile_of(a + b, params)
    np.testing.assert_array_equal(merged.table, whole.table)
    assert merged.added == whole.added
    X = base.embed(*pack(a + b)).astype(np.float64)
    assert merged.scale == pytest.approx(2.0 * np.sqrt(X.var(axis=0).sum()), rel=1e-9)


def test_composition_scale_edge_cases() -> None:
    d = np.zeros(3)
    assert composition_scale(0, d, d) == 1.0
    assert composition_scale(5, np.ones(3) * 5, np.ones(3) * 5) == 1.0  # no spread
    X = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 2.0]])
    got = composition_scale(3, X.sum(0), (X * X).sum(0))
    assert got == pytest.approx(np.sqrt(X.var(axis=0).sum()))


def test_with_abundance_appends_the_scaled_column() -> None:
    rng = np.random.default_rng(7)
    genome = random_dna(rng, 500)
    reads = [genome[s : s + 100] for s in rng.integers(0, 400, 60)]
    prof = profile_of(reads, AbundanceParams(k=21, scaled=1), scale=0.25)
    base = make_embedder("kmer", k=4)
    emb = WithAbundance(base, prof)
    out = emb.embed(*pack(reads))
    assert emb.dim == base.dim + 1 and out.shape == (60, base.dim + 1)
    assert emb.name == "kmer+abundance" and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :-1], base.embed(*pack(reads)))
    np.testing.assert_allclose(out[:, -1], 0.25 * prof.values(*pack(reads)), rtol=1e-6)
    assert out[:, -1].max() > 0


def test_embedder_for_follows_the_spec() -> None:
    off = EmbeddingSpec(k=3, abundance=AbundanceSpec(enabled=False))
    assert embedder_for(off, None).dim == 32
    on = EmbeddingSpec(k=3)
    with pytest.raises(ValueError, match="no first-pass profile"):
        embedder_for(on, None)
    prof = profile_of(["ACGT" * 10], AbundanceParams())
    assert embedder_for(on, prof).dim == 33


@pytest.mark.parametrize(
    "kwargs",
    [{"k": 10}, {"k": 32}, {"scaled": 0}, {"table_bits": 7}, {"table_bits": 29}],
)
def test_params_refuse_out_of_range_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="abundance"):
        AbundanceParams(**kwargs)


def test_profile_file_counts_everything_and_samples_the_first_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One file's first pass: all reads counted, moments from the first SCALE_SAMPLE_READS."""
    rng = np.random.default_rng(8)
    reads = [random_dna(rng, int(rng.integers(30, 120))) for _ in range(500)]
    path = tmp_path / "r.fastq"
    path.write_text("".join(f"@r{i}\n{r}\n+\n{'I' * len(r)}\n" for i, r in enumerate(reads)))
    # Tiny sample blocks and a sample cap inside a batch exercise the slicing.
    monkeypatch.setattr(kmer_counting, "SAMPLE_BLOCK_BYTES", 8 * 32 * 7)
    monkeypatch.setattr(kmer_counting, "SCALE_SAMPLE_READS", 301)
    spec = EmbeddingSpec(k=3, abundance=AbundanceSpec(k=15, scaled=1, table_bits=18))
    part = kmer_counting.profile_file(
        S3Config.from_env(), InputFile(str(path), path.stat().st_size), spec, batch_size=128
    )
    whole = profile_of(reads, AbundanceParams(k=15, scaled=1, table_bits=18))
    np.testing.assert_array_equal(part.table, whole.table)
    assert (part.added, part.reads, part.n) == (whole.added, 500, 301)
    X = make_embedder("kmer", k=3).embed(*pack(reads[:301])).astype(np.float64)
    np.testing.assert_allclose(part.s1, X.sum(0), rtol=1e-9)
    np.testing.assert_allclose(part.s2, (X * X).sum(0), rtol=1e-9)


def test_merged_tables_saturate_too() -> None:
    merger = ProfileMerger(AbundanceSpec(k=11, scaled=1, table_bits=16), 1)
    full = np.full(1 << 16, np.iinfo(np.uint16).max - 5, np.uint16)
    one = FileProfile(full, 10, 1, 0, np.zeros(1), np.zeros(1))
    merger.add(one)
    merger.add(one)
    profile = merger.profile()
    assert profile.table.dtype == np.uint16 and profile.added == 20
    assert np.all(profile.table == np.iinfo(np.uint16).max)
