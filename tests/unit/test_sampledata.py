"""The bundled demo data and its generator: deterministic, mixed, labelled, small.

The generator tests run the real ART simulator on the real Debian genomes
(skipped where those packages are missing); the bundled-data tests check what
is committed under examples/data/, and that examples/demo-pipeline.yaml is a
valid pipeline over it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from vectorpipe_api.pipeline import PipelineDocument
from vectorpipe_workloads import sampledata
from vectorpipe_workloads.storage import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DATA = EXAMPLES / "data"

needs_art = pytest.mark.skipif(
    shutil.which(sampledata.ART_BINARY) is None
    or not all(Path(g.path).exists() for g in sampledata.GENOMES),
    reason="needs art-nextgen-simulation-tools, kmer-examples and bowtie2-examples",
)


def parse_reads(path: Path) -> list[tuple[str, str]]:
    """(id, sequence) of every record in a FASTQ/FASTA file, gzip or not."""
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.name.endswith(".gz") else data).decode()
    lines = text.splitlines()
    if lines[0].startswith("@"):
        assert len(lines) % 4 == 0
        return [(lines[i][1:], lines[i + 1]) for i in range(0, len(lines), 4)]
    assert lines[0].startswith(">")
    assert len(lines) % 2 == 0
    return [(lines[i][1:], lines[i + 1]) for i in range(0, len(lines), 2)]


def digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> sampledata.SampleDataResult:
    if shutil.which(sampledata.ART_BINARY) is None:
        pytest.skip("needs art_illumina")
    out = tmp_path_factory.mktemp("small")
    return sampledata.generate(out, reads_per_genome=60, seed=3)


@needs_art
def test_generator_writes_exact_counts_and_mixes_sources(
    small: sampledata.SampleDataResult,
) -> None:
    out = small.out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*sampledata.OUTPUT_FILES, sampledata.LABELS_NAME, sampledata.README_NAME]
    )
    labels = sampledata.load_labels(out / sampledata.LABELS_NAME)
    assert Counter(labels.values()) == {g.source: 60 for g in sampledata.GENOMES}
    seen: list[str] = []
    for name in sampledata.OUTPUT_FILES:
        reads = parse_reads(out / name)
        ids = [rid for rid, _ in reads]
        seen.extend(ids)
        assert all(len(seq) == sampledata.READ_LENGTH for _, seq in reads)
        assert all(set(seq) <= set("ACGTN") for _, seq in reads)
        # Every file mixes all three genomes: a file name is not a label.
        assert {labels[rid] for rid in ids} == {g.source for g in sampledata.GENOMES}
        # Ids carry no hint of the source.
        for g in sampledata.GENOMES:
            assert not any(g.source in rid or g.accession in rid for rid in ids)
    assert len(seen) == len(set(seen)) == len(labels)
    assert set(seen) == set(labels)
    per_file = {f.name: f.per_source for f in small.files}
    assert per_file["sample_a.fastq.gz"] == {
        "M_tuberculosis": 36,
        "M_leprae": 15,
        "phage_lambda": 27,
    }


@needs_art
def test_generator_is_deterministic_for_a_seed(
    small: sampledata.SampleDataResult, tmp_path: Path
) -> None:
    again = sampledata.generate(tmp_path / "again", reads_per_genome=60, seed=3)
    assert digest(again.out) == digest(small.out)
    # gzip headers hold no timestamp and no file name.
    for name in ("sample_a.fastq.gz", sampledata.LABELS_NAME):
        header = (again.out / name).read_bytes()[:10]
        assert header[4:8] == b"\0\0\0\0"  # MTIME
        assert header[3] & 0x08 == 0  # FNAME flag
    other = sampledata.generate(tmp_path / "other", reads_per_genome=60, seed=4)
    assert digest(other.out)["sample_a.fastq.gz"] != digest(small.out)["sample_a.fastq.gz"]


@needs_art
def test_readme_records_how_the_data_was_made(small: sampledata.SampleDataResult) -> None:
    readme = (small.out / sampledata.README_NAME).read_text()
    assert "--reads-per-genome 60 --seed 3" in readme
    assert sampledata.ART_PACKAGE in readme
    for g in sampledata.GENOMES:
        assert g.package in readme and g.path in readme and g.accession in readme
    for f in small.files:
        assert f.sha256[:16] in readme


def test_missing_art_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(sampledata.SampleDataError, match="art-nextgen-simulation-tools"):
        sampledata.generate(tmp_path / "out", reads_per_genome=10)
    assert sampledata.main(["--out", str(tmp_path / "out")]) == 1
    assert "apt-get install art-nextgen-simulation-tools" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_genome_names_its_package() -> None:
    genome = sampledata.Genome(
        "x", "Nonesuch virus", "NC_0", "some-examples", "/nonexistent/genome.fa.gz"
    )
    with pytest.raises(sampledata.SampleDataError, match="apt-get install some-examples"):
        sampledata.genome_fasta(genome)


def test_split_counts_and_coverage() -> None:
    assert sampledata.split_counts(5000, (0.6, 0.3, 0.1)) == [3000, 1500, 500]
    assert sum(sampledata.split_counts(61, (0.25, 0.65, 0.10))) == 61
    # Enough coverage for OVERSAMPLE times the reads, rounded up.
    cov = sampledata.coverage_for(5000, 48502)
    assert cov * 48502 / sampledata.READ_LENGTH >= 5000 * sampledata.OVERSAMPLE
    assert sampledata.art_seed(0, 0) != 0


def test_load_labels_plain_gzip_and_header(tmp_path: Path) -> None:
    text = "read_id\tsource\nr1\tA\nr2\tB\n\n"
    plain = tmp_path / "labels.tsv"
    plain.write_text(text)
    packed = tmp_path / "labels.tsv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert sampledata.load_labels(plain) == {"r1": "A", "r2": "B"}
    assert sampledata.load_labels(str(packed), Store()) == {"r1": "A", "r2": "B"}
    bad = tmp_path / "bad.tsv"
    bad.write_text("r1\n")
    with pytest.raises(ValueError, match="line 1"):
        sampledata.load_labels(bad)


# -- what is committed ---------------------------------------------------------


def test_bundled_data_is_small_labelled_and_mixed() -> None:
    files = sorted(p for p in DATA.iterdir() if p.is_file())
    assert sum(p.stat().st_size for p in files) < 3 * 1024 * 1024
    read_files = [p for p in files if p.name in sampledata.OUTPUT_FILES]
    assert len(read_files) == 3
    assert any(".fastq" in p.name for p in read_files)
    assert any(".fasta" in p.name for p in read_files)
    labels = sampledata.load_labels(DATA / sampledata.LABELS_NAME)
    counts = Counter(labels.values())
    assert set(counts) == {g.source for g in sampledata.GENOMES}
    assert len(set(counts.values())) == 1  # the same number of reads per genome
    assert 10_000 <= len(labels) <= 20_000
    ids = [rid for p in read_files for rid, _ in parse_reads(p)]
    assert len(ids) == len(set(ids)) == len(labels)
    assert set(ids) == set(labels)
    readme = (DATA / "README.md").read_text()
    assert "python -m vectorpipe_workloads.sampledata --out examples/data" in readme


@needs_art
@pytest.mark.slow
def test_bundled_data_regenerates_from_its_readme(tmp_path: Path) -> None:
    """The committed reads are exactly what the command in the README makes.

    Compared after decompression, so a different zlib build cannot fail it.
    """
    readme = (DATA / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("python -m "))
    args = line.split()
    n = int(args[args.index("--reads-per-genome") + 1])
    seed = int(args[args.index("--seed") + 1])
    fresh = sampledata.generate(tmp_path, reads_per_genome=n, seed=seed, write_readme=False)
    for name in [*sampledata.OUTPUT_FILES, sampledata.LABELS_NAME]:
        new = (fresh.out / name).read_bytes()
        old = (DATA / name).read_bytes()
        if name.endswith(".gz"):
            new, old = gzip.decompress(new), gzip.decompress(old)
        assert new == old, name


def _absolute(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    """What the runner does: resolve relative URIs against the YAML file's directory."""
    spec = doc["spec"]
    for section in ("input", "output"):
        uri = spec[section]["uri"]
        if not uri.startswith(("/", "s3://", "file://")):
            spec[section]["uri"] = os.path.normpath(base / uri) + ("/" if uri.endswith("/") else "")
    return doc


def test_demo_pipeline_is_valid_and_points_at_the_bundled_data() -> None:
    path = EXAMPLES / "demo-pipeline.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["spec"]["input"]["uri"] == "./data/"
    assert raw["spec"]["output"]["uri"] == "./out/demo/"
    doc = PipelineDocument.model_validate(_absolute(raw, path.parent))
    spec = doc.spec
    assert doc.name == "demo"
    assert Path(spec.input.uri) == DATA
    assert spec.embedding.method == "kmer" and spec.embedding.k == 4 and spec.embedding.canonical
    assert spec.dim == 137  # 136 canonical 4-mers + abundance
    assert spec.output.shards == 4
    assert spec.hpc.slurm.nodes == 1 and spec.hpc.slurm.ntasks_per_node == 2
    assert spec.hpc.slurm.endpoint is None
    assert spec.hpc.app.name == "kmeans" and spec.hpc.app.seed == 0
    assert spec.hpc.app.clusters == len(sampledata.GENOMES)
    # The input directory holds exactly the read files (README and labels are not reads).
    listed = Store().list_inputs(spec.input.uri)
    assert sorted(Path(f.uri).name for f in listed) == sorted(sampledata.OUTPUT_FILES)
