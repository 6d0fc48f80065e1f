"""The demo data set itself: deal ART's reads into the files, write them, the labels and a README.

`generate` simulates every genome (`simulator.simulate`), keeps a fixed number of reads
per genome chosen by a seeded generator, deals them into two gzip FASTQ files
and one plain FASTA file with a different mix of genomes in each, and writes
them with `labels.tsv.gz` (read_id, source) and a `README.md` that records how
they were made; `load_labels` reads the labels back for the run report; `main`
is `python -m vectorpipe_workloads.sampledata`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vectorpipe_workloads.sampledata.simulator import (
    ART_BINARY,
    ART_PACKAGE,
    ART_PROFILE,
    GENOMES,
    OVERSAMPLE,
    READ_LENGTH,
    Genome,
    Read,
    SampleDataError,
    art_seed,
    art_version,
    coverage_for,
    find_art,
    genome_fasta,
    package_version,
    sequence_stats,
    simulate,
)
from vectorpipe_workloads.storage import FASTA_SUFFIXES, Store

DEFAULT_READS_PER_GENOME = 5000
DEFAULT_SEED = 7
LABELS_NAME = "labels.tsv.gz"
README_NAME = "README.md"

# Share of each genome's reads that goes to each output file (rows sum to 1).
# The mixes differ per file, like samples with different abundances, and every
# file holds every genome, so clustering by file would score badly.
OUTPUT_FILES: tuple[str, ...] = ("sample_a.fastq.gz", "sample_b.fastq.gz", "sample_c.fasta")
MIX: dict[str, tuple[float, ...]] = {
    "M_tuberculosis": (0.60, 0.30, 0.10),
    "M_leprae": (0.25, 0.65, 0.10),
    "phage_lambda": (0.45, 0.45, 0.10),
}


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
