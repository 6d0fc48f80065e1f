"""Stage 1 on a real local Ray: shards, manifest, determinism, S3, Lance, bad input."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.services.s3 import LocalS3
from vectorpipe_api.pipeline import VectorPipelineSpec
from vectorpipe_workloads.etl import EmptyInputError, run_etl
from vectorpipe_workloads.etl.embed import make_embedder
from vectorpipe_workloads.etl.embed.abundance import (
    AbundanceParams,
    AbundanceProfile,
    KmerCounter,
    WithAbundance,
    composition_scale,
)
from vectorpipe_workloads.etl.readers import InputFormatError
from vectorpipe_workloads.manifest import read_manifest
from vectorpipe_workloads.shards import embedding_matrix, read_shard
from vectorpipe_workloads.storage import Store

pytestmark = pytest.mark.ray


def random_reads(rng: np.random.Generator, n: int, prefix: str) -> list[tuple[str, str]]:
    bases = np.array(list("ACGTN"))
    out = []
    for i in range(n):
        length = int(rng.integers(2, 160))
        seq = "".join(bases[rng.choice(5, size=length, p=[0.24, 0.24, 0.24, 0.24, 0.04])])
        out.append((f"{prefix}{i}", seq))
    return out


def fastq(reads: list[tuple[str, str]]) -> str:
    return "".join(f"@{r} extra\n{s}\n+\n{'I' * len(s)}\n" for r, s in reads)


def fasta(reads: list[tuple[str, str]]) -> str:
    return "".join(
        f">{r}\n{s[:60]}\n{s[60:]}\n" if len(s) > 60 else f">{r}\n{s}\n" for r, s in reads
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, list[tuple[str, str]]]:
    rng = np.random.default_rng(7)
    d = tmp_path / "in"
    d.mkdir()
    a, b, c = random_reads(rng, 700, "a"), random_reads(rng, 1300, "b"), random_reads(rng, 333, "c")
    (d / "a.fastq").write_text(fastq(a))
    with gzip.open(d / "b.fq.gz", "wt") as f:
        f.write(fastq(b))
    (d / "c.fasta").write_text(fasta(c))
    return d, a + b + c  # sorted file order: a.fastq, b.fq.gz, c.fasta


def spec(inp: str, out: str, **extra: Any) -> VectorPipelineSpec:
    raw: dict[str, Any] = {
        "input": {"uri": inp},
        "output": {
            "uri": out,
            "shards": extra.pop("shards", 4),
            "format": extra.pop("fmt", "parquet"),
        },
        "embedding": {"method": "kmer", "k": 3},
        "ray": {"batchSize": 256},
    }
    raw.update(extra)
    return VectorPipelineSpec.model_validate(raw)


def all_rows(store: Store, out: str) -> tuple[list[str], np.ndarray]:
    m = read_manifest(store, out)
    tables = [read_shard(store, out, s) for s in m.shards]
    ids = [i for t in tables for i in t.column("read_id").to_pylist()]
    return ids, np.vstack([embedding_matrix(t) for t in tables])


def one_pass_embedding(seqs: list[str], k: int = 3) -> np.ndarray:
    """What stage 1 should produce, computed in this process over all reads at once."""
    base = make_embedder("kmer", k=k)
    buf = np.frombuffer("".join(seqs).encode(), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    counter = KmerCounter(AbundanceParams())
    counter.add(buf, offsets)
    X = base.embed(buf, offsets).astype(np.float64)
    scale = composition_scale(len(X), X.sum(0), (X * X).sum(0))
    profile = AbundanceProfile(AbundanceParams(), counter.table, counter.added, scale)
    return WithAbundance(base, profile).embed(buf, offsets)


def test_abundance_column_separates_deep_reads_and_can_be_turned_off(
    ray_session: Any, tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    deep = "".join(rng.choice(list("ACGT"), 3000))
    d = tmp_path / "in"
    d.mkdir()
    # A 3 kb genome at ~40x split over two files, and reads of random sequence.
    for name in ("d1", "d2"):
        reads = [
            (f"{name}-{i}", deep[s : s + 150]) for i, s in enumerate(rng.integers(0, 2850, 400))
        ]
        (d / f"{name}.fastq").write_text(fastq(reads))
    (d / "r.fastq").write_text(fastq(random_reads(rng, 400, "r")))
    out = str(tmp_path / "out")
    m = run_etl(spec(str(d) + "/", out, shards=2), pipeline="t", run="uid-1/r2")
    assert m.dim == 33 and m.embedding["abundance"]["enabled"] is True
    # The run is recorded in the committed manifest, which the operator checks.
    assert read_manifest(Store(), out).run == "uid-1/r2"
    ids, vecs = all_rows(Store(), out)
    col = vecs[:, -1]
    is_deep = np.array([i.startswith("d") for i in ids])
    assert col[is_deep].min() > 0 and np.median(col[~is_deep]) == 0.0
    off = run_etl(
        spec(
            str(d) + "/", out, embedding={"method": "kmer", "k": 3, "abundance": {"enabled": False}}
        ),
        pipeline="t",
    )
    assert off.dim == 32
    _, plain = all_rows(Store(), out)
    np.testing.assert_array_equal(plain, vecs[:, :-1])


def test_local_run_writes_balanced_deterministic_shards(
    ray_session: Any, inputs: tuple[Path, list[tuple[str, str]]], tmp_path: Path
) -> None:
    d, reads = inputs
    out = str(tmp_path / "out")
    m = run_etl(spec(str(d) + "/", out), pipeline="t")
    assert m.rows == len(reads) and len(m.shards) == 4 and m.dim == 33
    sizes = [s.rows for s in m.shards]
    assert max(sizes) - min(sizes) <= 1
    assert [s.records for s in m.sources] == [700, 1300, 333]
    store = Store()
    ids, vecs = all_rows(store, out)
    assert ids == [r for r, _ in reads]
    # The files' first-pass profiles, merged across tasks, equal one pass over all reads.
    np.testing.assert_allclose(vecs, one_pass_embedding([s for _, s in reads]), rtol=1e-5)
    first = [pq.read_table(Path(out) / s.path) for s in m.shards]
    # A rerun with fewer shards overwrites cleanly and drops the stale shard files.
    m2 = run_etl(spec(str(d) + "/", out, shards=2), pipeline="t")
    assert sorted(p.name for p in Path(out).iterdir()) == [
        "_manifest.json", "part-00000.parquet", "part-00001.parquet",
    ]  # fmt: skip
    m3 = run_etl(spec(str(d) + "/", out), pipeline="t")
    assert [s.rows for s in m3.shards] == sizes and m2.rows == m.rows
    again = [pq.read_table(Path(out) / s.path) for s in m3.shards]
    assert all(a.equals(b) for a, b in zip(first, again, strict=True))


@pytest.mark.faults
def test_bad_record_fails_with_file_and_record_and_no_manifest(
    ray_session: Any, inputs: tuple[Path, list[tuple[str, str]]], tmp_path: Path
) -> None:
    d, _ = inputs
    out = tmp_path / "out"
    run_etl(spec(str(d) + "/", str(out)))
    assert (out / "_manifest.json").exists()
    (d / "z.fastq").write_text("@ok\nACGT\n+\nIIII\n@bad\nACGT\n+\nII\n")
    with pytest.raises(InputFormatError) as err:
        run_etl(spec(str(d) + "/", str(out)))
    assert err.value.source.endswith("z.fastq") and err.value.record == 2
    assert "z.fastq" in str(err.value)
    assert not (out / "_manifest.json").exists()
    assert not (out / "_staging").exists() or not any((out / "_staging").rglob("*.arrow"))


@pytest.mark.faults
def test_empty_input_is_refused(ray_session: Any, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "e.fasta").write_text("")
    with pytest.raises((EmptyInputError, InputFormatError)):
        run_etl(spec(str(d) + "/", str(tmp_path / "out")))
    assert not (tmp_path / "out" / "_manifest.json").exists()


@pytest.mark.s3
def test_s3_input_and_output(
    ray_session: Any, s3: LocalS3, inputs: tuple[Path, list[tuple[str, str]]]
) -> None:
    d, reads = inputs
    bucket = s3.create_bucket("vp-etl")
    client = s3.client()
    for p in sorted(d.iterdir()):
        client.upload_file(str(p), bucket, f"reads/{p.name}")
    out = f"s3://{bucket}/runs/r1"
    m = run_etl(spec(f"s3://{bucket}/reads/", out, shards=3, s3={"endpointUrl": s3.endpoint_url}))
    assert m.rows == len(reads)
    store = Store()
    assert store.exists(f"{out}/_manifest.json")
    ids, _ = all_rows(store, out)
    assert ids == [r for r, _ in reads]
    assert not [u for u in store.list_prefix(out) if "_staging" in u]


def test_lance_output(
    ray_session: Any, inputs: tuple[Path, list[tuple[str, str]]], tmp_path: Path
) -> None:
    d, reads = inputs
    out = str(tmp_path / "lance")
    m = run_etl(spec(str(d) + "/", out, shards=3, fmt="lance"))
    assert m.format == "lance" and [s.fragment for s in m.shards] == [0, 1, 2]
    ids, vecs = all_rows(Store(), out)
    assert ids == [r for r, _ in reads] and vecs.shape == (len(reads), 33)
