"""The demo data's raw material: three genomes from Debian packages and ART's reads of each.

`GENOMES` says where Debian ships each reference (`kmer-examples`,
`bowtie2-examples`); `genome_fasta` takes its FASTA out of the archive or gzip
file, and `simulate` runs the ART read simulator (`art_illumina`, Debian
package `art-nextgen-simulation-tools`) on it with a fixed seed and returns
every read in ART's order. `dataset.generate` decides how many reads to keep and
where they go.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ART_BINARY = "art_illumina"
ART_PACKAGE = "art-nextgen-simulation-tools"
READ_LENGTH = 150
ART_PROFILE = "HS25"  # HiSeq 2500: ART's built-in profile for 150 bp reads
# ART draws read starts at random, so asking for exactly N reads from a fixed
# coverage would make N depend on the genome length's rounding; simulate more
# than needed and subsample, which also decouples the kept reads from ART's order.
OVERSAMPLE = 1.5


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


class SampleDataError(RuntimeError):
    """A tool or genome the generator needs is not installed, or ART misbehaved."""


@dataclass(frozen=True)
class Read:
    source: str
    seq: str
    qual: str


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
