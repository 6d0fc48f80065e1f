"""Benchmark inputs: ART reads from Debian's genomes, 1 kb reads, FASTQ/FASTA files.

Short reads are ART's (HiSeq 2500 profile, 150 bp) via `sampledata.simulate`,
so the same simulator as the bundled sample data. ART's Illumina profiles stop
at 250 bp and its 454 profile at about 560 bp (mean 343 bp even with more flow
cycles), so the ~1 kb reads are drawn here instead: uniform start positions on
either strand with 1% substitutions and 0.5% single-base insertions and
deletions each, a long-read-like error profile. Stage-1 files are a pool of
ART reads repeated under fresh names, which keeps the files realistic (real
error profile and base composition) without simulating millions of reads.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vectorpipe_workloads import sampledata

COMPLEMENT = bytes.maketrans(b"ACGTN", b"TGCAN")


@dataclass(frozen=True)
class Labelled:
    """Reads with the genome each one came from."""

    seqs: list[str]
    quals: list[str]
    sources: list[str]


def genomes() -> list[tuple[sampledata.Genome, bytes]]:
    return [(g, sampledata.genome_fasta(g)) for g in sampledata.GENOMES]


def plain_sequence(fasta: bytes) -> bytes:
    return b"".join(
        line.strip() for line in fasta.splitlines() if not line.startswith(b">")
    ).upper()


def short_reads(per_genome: int, seed: int) -> Labelled:
    """`per_genome` ART 150 bp reads from each genome, subsampled from ART's output."""
    art = sampledata.find_art()
    rng = np.random.default_rng(seed)
    out = Labelled([], [], [])
    for i, (g, fasta) in enumerate(genomes()):
        length, _ = sampledata.sequence_stats(fasta)
        cov = sampledata.coverage_for(per_genome, length)
        reads = sampledata.simulate(art, g, fasta, cov, sampledata.art_seed(seed, i))
        pick = rng.choice(len(reads), size=min(per_genome, len(reads)), replace=False)
        for j in pick:
            out.seqs.append(reads[j].seq)
            out.quals.append(reads[j].qual)
            out.sources.append(g.source)
    return out


def _mutate(read: bytes, rng: np.random.Generator) -> bytes:
    arr = np.frombuffer(read, dtype=np.uint8)
    u = rng.random(len(arr))
    sub = u < 0.01
    ins = (u >= 0.01) & (u < 0.015)
    dele = (u >= 0.015) & (u < 0.02)
    arr = arr.copy()
    arr[sub] = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, int(sub.sum()))]
    pieces: list[bytes] = []
    last = 0
    for pos in np.flatnonzero(ins | dele):
        pieces.append(arr[last:pos].tobytes())
        if ins[pos]:
            pieces.append(
                b"ACGT"[int(rng.integers(4))].to_bytes(1, "big") + arr[pos : pos + 1].tobytes()
            )
        last = int(pos) + 1
    pieces.append(arr[last:].tobytes())
    return b"".join(pieces)


def long_reads(per_genome: int, seed: int, length: int = 1000) -> Labelled:
    """`per_genome` ~1 kb reads per genome with 2% errors (see the module docstring)."""
    rng = np.random.default_rng(seed + 1)
    out = Labelled([], [], [])
    for g, fasta in genomes():
        ref = plain_sequence(fasta)
        for _ in range(per_genome):
            start = int(rng.integers(0, len(ref) - length))
            read = ref[start : start + length]
            if rng.random() < 0.5:
                read = read.translate(COMPLEMENT)[::-1]
            seq = _mutate(read, rng).decode()
            out.seqs.append(seq)
            out.quals.append("I" * len(seq))
            out.sources.append(g.source)
    return out


def fastq_bytes(seqs: list[str], quals: list[str], prefix: str = "r") -> bytes:
    return "".join(
        f"@{prefix}{i}\n{s}\n+\n{q}\n" for i, (s, q) in enumerate(zip(seqs, quals, strict=True))
    ).encode()


def fasta_bytes(seqs: list[str], prefix: str = "r") -> bytes:
    return "".join(f">{prefix}{i}\n{s}\n" for i, s in enumerate(seqs)).encode()


def repeated(pool: Labelled, n: int) -> tuple[list[str], list[str]]:
    """n reads cycling through the pool (names are made unique by the writers)."""
    reps = -(-n // len(pool.seqs))
    return (pool.seqs * reps)[:n], (pool.quals * reps)[:n]


@dataclass(frozen=True)
class Stage1Files:
    fastq: Path
    fastq_gz: Path
    fasta: Path
    reads: int


def stage1_files(directory: Path, pool: Labelled, n: int) -> Stage1Files:
    """The same n reads as plain FASTQ, gzip FASTQ (level 6) and FASTA."""
    seqs, quals = repeated(pool, n)
    fq = fastq_bytes(seqs, quals)
    files = Stage1Files(
        directory / "reads.fastq", directory / "reads.fastq.gz", directory / "reads.fasta", n
    )
    files.fastq.write_bytes(fq)
    files.fastq_gz.write_bytes(gzip.compress(fq, compresslevel=6))
    files.fasta.write_bytes(fasta_bytes(seqs))
    return files
