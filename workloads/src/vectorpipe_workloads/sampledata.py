"""The bundled demo data: simulated Illumina reads from three genomes shipped in Debian packages.

`python -m vectorpipe_workloads.sampledata --out examples/data` runs the ART read
simulator (`art_illumina`, Debian package `art-nextgen-simulation-tools`) on
*Mycobacterium tuberculosis* H37Rv and *Mycobacterium leprae* TN (from
`kmer-examples`) and on phage lambda (from `bowtie2-examples`), keeps a fixed
number of 150 bp single-end reads per genome chosen by a seeded generator, and
deals them into two gzip FASTQ files and one plain FASTA file with a different
mix of genomes in each, so a file name says nothing about where a read came
from. Read ids are neutral (`sample_a_000001`); the truth is in
`labels.tsv.gz` (read_id, source), which `load_labels` reads back and the run
report scores clusters against. The same seed gives the same bytes: ART is
seeded, the subsample is drawn from NumPy's PCG64 and gzip headers carry
mtime 0 and no file name. `README.md` in the output records how it was made.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vectorpipe_workloads.storage import FASTA_SUFFIXES, Store

ART_BINARY = "art_illumina"
ART_PACKAGE = "art-nextgen-simulation-tools"
READ_LENGTH = 150
ART_PROFILE = "HS25"  # HiSeq 2500: ART's built-in profile for 150 bp reads
# ART draws read starts at random, so asking for exactly N reads from a fixed
# coverage would make N depend on the genome length's rounding; simulate more
# than needed and subsample, which also decouples the kept reads from ART's order.
OVERSAMPLE = 1.5
DEFAULT_READS_PER_GENOME = 5000
DEFAULT_SEED = 7
LABELS_NAME = "labels.tsv.gz"
README_NAME = "README.md"


@dataclass(frozen=True)
class Genome:
    """One reference genome and where Debian ships it."""

    source: str  # label written to labels.tsv.gz
    organism: str
    accession: str
    package: str
    path: str  # a FASTA file, or a tar.gz archive holding `member`
    member: str | None = None


GENOMES: tuple[Genome, ...] = (
    Genome(
        source="M_tuberculosis",
        organism="Mycobacterium tuberculosis H37Rv",
        accession="NC_000962.3",
        package="kmer-examples",
        path="/usr/share/doc/kmer-examples/test_data.tar.gz",
        member="GCF_000195955.2_ASM19595v2_genomic.fna",
    ),
    Genome(
        source="M_leprae",
        organism="Mycobacterium leprae TN",
        accession="NC_002677.1",
        package="kmer-examples",
        path="/usr/share/doc/kmer-examples/test_data.tar.gz",
        member="GCF_000195855.1_ASM19585v1_genomic.fna",
    ),
    Genome(
        source="phage_lambda",
        organism="Enterobacteria phage lambda",
        accession="NC_001416.1",
        package="bowtie2-examples",
        path="/usr/share/doc/bowtie2/examples/reference/lambda_virus.fa.gz",
    ),
)

# Share of each genome's reads that goes to each output file (rows sum to 1).
# The mixes differ per file, like samples with different abundances, and every
# file holds every genome, so clustering by file would score badly.
OUTPUT_FILES: tuple[str, ...] = ("sample_a.fastq.gz", "sample_b.fastq.gz", "sample_c.fasta")
MIX: dict[str, tuple[float, ...]] = {
    "M_tuberculosis": (0.60, 0.30, 0.10),
    "M_leprae": (0.25, 0.65, 0.10),
    "phage_lambda": (0.45, 0.45, 0.10),
}


class SampleDataError(RuntimeError):
    """A tool or genome the generator needs is not installed, or ART misbehaved."""


@dataclass(frozen=True)
class Read:
    source: str
    seq: str
    qual: str


@dataclass(frozen=True)
class GenomeInfo:
    genome: Genome
    length: int
    gc: float
    coverage: float
    simulated: int
    package_version: str


@dataclass(frozen=True)
class OutputFile:
    name: str
    reads: int
    bytes: int
    sha256: str
    per_source: dict[str, int]


@dataclass(frozen=True)
class SampleDataResult:
    out: Path
    files: list[OutputFile]
    labels: OutputFile
    genomes: list[GenomeInfo]
    reads_per_genome: int
    seed: int
    art_version: str


# -- tools and genomes -------------------------------------------------------


def find_art() -> str:
    path = shutil.which(ART_BINARY)
    if path is None:
        raise SampleDataError(
            f"{ART_BINARY} not found on PATH; it is the ART read simulator from the Debian "
            f"package {ART_PACKAGE} (sudo apt-get install {ART_PACKAGE})"
        )
    return path


def art_version(art: str) -> str:
    # ART prints its banner on any invocation; with no arguments it exits non-zero.
    proc = subprocess.run([art], capture_output=True, text=True, check=False)
    match = re.search(r"Version\s+([0-9][0-9.]*)", proc.stdout + proc.stderr)
    return match.group(1) if match else "unknown"


def package_version(package: str) -> str:
    if shutil.which("dpkg-query") is None:
        return "unknown"
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def genome_fasta(genome: Genome) -> bytes:
    """The genome's FASTA bytes, out of its archive or gzip file as Debian ships it."""
    path = Path(genome.path)
    if not path.exists():
        raise SampleDataError(
            f"{genome.organism} genome not found at {genome.path}; it comes from the Debian "
            f"package {genome.package} (sudo apt-get install {genome.package})"
        )
    if genome.member is not None:
        with tarfile.open(path, "r:gz") as tar:
            try:
                handle = tar.extractfile(genome.member)
            except KeyError:
                handle = None
            if handle is None:
                raise SampleDataError(f"{genome.member} missing from {genome.path}")
            return handle.read()
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    return path.read_bytes()


def sequence_stats(fasta: bytes) -> tuple[int, float]:
    """Length and GC fraction of every sequence in a FASTA file together."""
    seq = b"".join(line.strip() for line in fasta.splitlines() if not line.startswith(b">"))
    seq = seq.upper()
    gc = seq.count(b"G") + seq.count(b"C")
    return len(seq), gc / max(len(seq), 1)


def coverage_for(reads: int, genome_length: int) -> float:
    # Round up at four decimals: ART takes the fold coverage as a decimal number.
    return math.ceil(reads * OVERSAMPLE * READ_LENGTH / genome_length * 10000) / 10000


def parse_fastq(text: str, source: str) -> list[Read]:
    lines = text.splitlines()
    if len(lines) % 4:
        raise SampleDataError(f"ART wrote a truncated FASTQ for {source}")
    reads: list[Read] = []
    for i in range(0, len(lines), 4):
        if not lines[i].startswith("@") or not lines[i + 2].startswith("+"):
            raise SampleDataError(f"ART wrote an unexpected FASTQ record {i // 4 + 1} for {source}")
        reads.append(Read(source, lines[i + 1], lines[i + 3]))
    return reads


def simulate(art: str, genome: Genome, fasta: bytes, coverage: float, seed: int) -> list[Read]:
    """Every read ART simulates from one genome, in ART's order."""
    with tempfile.TemporaryDirectory(prefix="vp-art-") as tmp:
        ref = os.path.join(tmp, "ref.fa")
        Path(ref).write_bytes(fasta)
        prefix = os.path.join(tmp, "reads")
        cmd = art_command(art, ref, prefix, coverage, seed)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        fq = Path(prefix + ".fq")
        if proc.returncode != 0 or not fq.exists():
            tail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise SampleDataError(
                f"{ART_BINARY} failed for {genome.organism} (exit {proc.returncode}): {tail}"
            )
        return parse_fastq(fq.read_text(), genome.source)


def art_command(art: str, ref: str, prefix: str, coverage: float, seed: int) -> list[str]:
    return [
        art,
        "-ss",
        ART_PROFILE,
        "-l",
        str(READ_LENGTH),
        "-f",
        f"{coverage:.4f}",
        "-rs",
        str(seed),
        "-na",  # no .aln alignment file: the labels are all we need
        "-q",
        "-i",
        ref,
        "-o",
        prefix,
    ]


def art_seed(seed: int, index: int) -> int:
    # A distinct ART seed per genome, never 0 (which some ART builds treat as "use the clock").
    return seed * 100 + index + 1


# -- dealing reads into files -------------------------------------------------


def split_counts(total: int, shares: Sequence[float]) -> list[int]:
    """Integer counts proportional to `shares` that sum to `total` (remainder to the last)."""
    counts = [int(total * s) for s in shares[:-1]]
    counts.append(total - sum(counts))
    return counts


def deal(
    reads_by_source: dict[str, list[Read]], reads_per_genome: int, seed: int
) -> list[list[Read]]:
    """Subsample each genome to `reads_per_genome` and deal the reads into the output files."""
    import numpy as np

    rng = np.random.default_rng(seed)
    files: list[list[Read]] = [[] for _ in OUTPUT_FILES]
    for genome in GENOMES:
        pool = reads_by_source[genome.source]
        if len(pool) < reads_per_genome:
            raise SampleDataError(
                f"ART simulated only {len(pool)} reads for {genome.organism}, "
                f"fewer than the {reads_per_genome} requested"
            )
        # A random permutation both subsamples and scatters the kept reads over the files.
        order = rng.permutation(len(pool))[:reads_per_genome]
        start = 0
        for f, n in enumerate(split_counts(reads_per_genome, MIX[genome.source])):
            files[f].extend(pool[int(i)] for i in order[start : start + n])
            start += n
    # Shuffle within each file so the genomes are interleaved, not in blocks.
    return [[reads[int(i)] for i in rng.permutation(len(reads))] for reads in files]


def read_id(file_name: str, index: int) -> str:
    stem = file_name.split(".", 1)[0]
    return f"{stem}_{index + 1:06d}"


def gzip_bytes(data: bytes) -> bytes:
    # mtime=0 and an empty name keep the gzip header, and so the file, identical across runs.
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def render_reads(name: str, reads: Sequence[Read]) -> bytes:
    out: list[str] = []
    fasta = name.removesuffix(".gz").endswith(FASTA_SUFFIXES)
    for i, r in enumerate(reads):
        rid = read_id(name, i)
        if fasta:
            out.append(f">{rid}\n{r.seq}\n")
        else:
            out.append(f"@{rid}\n{r.seq}\n+\n{r.qual}\n")
    data = "".join(out).encode()
    return gzip_bytes(data) if name.endswith(".gz") else data


def render_labels(files: Sequence[tuple[str, Sequence[Read]]]) -> bytes:
    lines = ["read_id\tsource\n"]
    for name, reads in files:
        lines.extend(f"{read_id(name, i)}\t{r.source}\n" for i, r in enumerate(reads))
    return gzip_bytes("".join(lines).encode())


def load_labels(path: str | os.PathLike[str], store: Store | None = None) -> dict[str, str]:
    """read_id -> source genome from a `labels.tsv[.gz]` (a path or an s3:// URI)."""
    data = (store or Store()).read_bytes(os.fspath(path))
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    labels: dict[str, str] = {}
    for n, line in enumerate(data.decode().splitlines()):
        if not line.strip():
            continue
        fields = line.split("\t")
        if n == 0 and fields[0] == "read_id":
            continue
        if len(fields) < 2:
            raise ValueError(f"{os.fspath(path)}: line {n + 1} has no source column")
        labels[fields[0]] = fields[1]
    return labels


# -- the whole thing ---------------------------------------------------------


def generate(
    out: str | os.PathLike[str],
    *,
    reads_per_genome: int = DEFAULT_READS_PER_GENOME,
    seed: int = DEFAULT_SEED,
    write_readme: bool = True,
) -> SampleDataResult:
    """Simulate, subsample and write the demo data set into the directory `out`."""
    if reads_per_genome < len(OUTPUT_FILES):
        raise ValueError(f"reads_per_genome must be at least {len(OUTPUT_FILES)}")
    if not 0 <= seed <= 10**6:
        raise ValueError("seed must be between 0 and 1000000")
    art = find_art()
    version = art_version(art)
    reads_by_source: dict[str, list[Read]] = {}
    infos: list[GenomeInfo] = []
    for i, genome in enumerate(GENOMES):
        fasta = genome_fasta(genome)
        length, gc = sequence_stats(fasta)
        coverage = coverage_for(reads_per_genome, length)
        reads = simulate(art, genome, fasta, coverage, art_seed(seed, i))
        reads_by_source[genome.source] = reads
        infos.append(
            GenomeInfo(genome, length, gc, coverage, len(reads), package_version(genome.package))
        )
    dealt = deal(reads_by_source, reads_per_genome, seed)

    out_dir = Path(out)
    written: list[OutputFile] = []
    for name, reads in zip(OUTPUT_FILES, dealt, strict=True):
        data = render_reads(name, reads)
        _publish(out_dir / name, data)
        per_source = {g.source: sum(r.source == g.source for r in reads) for g in GENOMES}
        written.append(OutputFile(name, len(reads), len(data), _sha256(data), per_source))
    labels_data = render_labels(list(zip(OUTPUT_FILES, dealt, strict=True)))
    _publish(out_dir / LABELS_NAME, labels_data)
    labels = OutputFile(
        LABELS_NAME,
        reads_per_genome * len(GENOMES),
        len(labels_data),
        _sha256(labels_data),
        {g.source: reads_per_genome for g in GENOMES},
    )
    result = SampleDataResult(out_dir, written, labels, infos, reads_per_genome, seed, version)
    if write_readme:
        _publish(out_dir / README_NAME, render_readme(result).encode())
    return result


def _publish(path: Path, data: bytes) -> None:
    Store().write_bytes(str(path), data)
    # The atomic write goes through mkstemp, which makes the file 0600; this is
    # data to share (and to commit), so make it world-readable like any checkout.
    path.chmod(0o644)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render_readme(r: SampleDataResult) -> str:
    total = r.reads_per_genome * len(GENOMES)
    cmd = (
        "python -m vectorpipe_workloads.sampledata --out examples/data "
        f"--reads-per-genome {r.reads_per_genome} --seed {r.seed}"
    )
    g_rows = "\n".join(
        f"| `{i.genome.source}` | {i.genome.organism} | {i.genome.accession} | "
        f"{i.length:,} | {i.gc * 100:.1f} | `{i.genome.package}` {i.package_version} | "
        f"`{i.genome.path}`{f' → `{i.genome.member}`' if i.genome.member else ''} | "
        f"{i.coverage:.4f} | {i.simulated:,} |"
        for i in r.genomes
    )
    sources = [g.source for g in GENOMES]
    f_rows = "\n".join(
        f"| `{f.name}` | {f.reads:,} | "
        + " | ".join(f"{f.per_source[s]:,}" for s in sources)
        + f" | {f.bytes:,} | `{f.sha256[:16]}…` |"
        for f in r.files
    )
    return f"""# Bundled demo data

Simulated Illumina reads from three genomes, for `make demo`
(`examples/demo-pipeline.yaml`) and the tests. Generated, not hand-edited:

```sh
{cmd}
```

- Simulator: ART `{ART_BINARY}` {r.art_version} (Debian package `{ART_PACKAGE}`), \
single-end, profile `{ART_PROFILE}` (HiSeq 2500), {READ_LENGTH} bp reads, \
`-rs <seed*100 + genome index + 1>`, `-na`; command per genome:
  `{ART_BINARY} -ss {ART_PROFILE} -l {READ_LENGTH} -f <coverage> -rs <seed> -na -q -i <genome.fa> -o <prefix>`.
- ART simulates {OVERSAMPLE}× the reads needed; a NumPy PCG64 generator seeded
  with `--seed` ({r.seed}) keeps exactly {r.reads_per_genome:,} reads per genome
  ({total:,} in all), deals them into the files below with a different genome mix
  in each, and shuffles each file. Read ids (`sample_a_000001`, …) say nothing
  about the source; the truth is in `{LABELS_NAME}` (`read_id<TAB>source`,
  header line, gzip), read it with `vectorpipe_workloads.sampledata.load_labels`.
- Same seed, same bytes: gzip headers carry mtime 0 and no file name.
  (Byte identity across machines also assumes the same zlib and ART builds.)

## Genomes

| source | organism | accession | length (bp) | GC % | Debian package | file | ART `-f` | simulated |
|---|---|---|---:|---:|---|---|---:|---:|
{g_rows}

## Files

| file | reads | {" | ".join(sources)} | bytes | sha256 |
|---|---:|{"---:|" * len(sources)}---:|---|
{f_rows}
| `{r.labels.name}` | {r.labels.reads:,} | {" | ".join(f"{r.reads_per_genome:,}" for _ in sources)} | {r.labels.bytes:,} | `{r.labels.sha256[:16]}…` |

The pipeline reads every FASTQ/FASTA file in this directory (both formats, gzip
or not) and ignores this README and the labels file. With `--labels
examples/data/{LABELS_NAME}` the run report scores the k-means clusters against
the true sources (adjusted Rand index, NMI and a cluster × source table).
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vectorpipe_workloads.sampledata",
        description="Simulate the bundled demo reads with ART from genomes in Debian packages.",
    )
    parser.add_argument("--out", required=True, help="output directory, e.g. examples/data")
    parser.add_argument(
        "--reads-per-genome",
        type=int,
        default=DEFAULT_READS_PER_GENOME,
        help=f"reads kept per genome (default {DEFAULT_READS_PER_GENOME})",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"seed (default {DEFAULT_SEED})"
    )
    args = parser.parse_args(argv)
    try:
        result = generate(args.out, reads_per_genome=args.reads_per_genome, seed=args.seed)
    except (SampleDataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for f in [*result.files, result.labels]:
        print(f"{result.out / f.name}\t{f.reads} reads\t{f.bytes} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
