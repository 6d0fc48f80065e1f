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

Two modules: `simulator` (the genomes, where Debian ships them, and the ART
run) and `dataset` (subsample, deal, write the files, labels and README;
`load_labels`; `main`). Everything public is re-exported here.
"""

from __future__ import annotations

from vectorpipe_workloads.sampledata.dataset import (
    DEFAULT_READS_PER_GENOME,
    DEFAULT_SEED,
    LABELS_NAME,
    MIX,
    OUTPUT_FILES,
    README_NAME,
    GenomeInfo,
    OutputFile,
    SampleDataResult,
    deal,
    generate,
    gzip_bytes,
    load_labels,
    main,
    read_id,
    render_labels,
    render_readme,
    render_reads,
    split_counts,
)
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
    art_command,
    art_seed,
    art_version,
    coverage_for,
    find_art,
    genome_fasta,
    package_version,
    parse_fastq,
    sequence_stats,
    simulate,
)

__all__ = [
    "ART_BINARY",
    "ART_PACKAGE",
    "ART_PROFILE",
    "DEFAULT_READS_PER_GENOME",
    "DEFAULT_SEED",
    "GENOMES",
    "LABELS_NAME",
    "MIX",
    "OUTPUT_FILES",
    "OVERSAMPLE",
    "README_NAME",
    "READ_LENGTH",
    "Genome",
    "GenomeInfo",
    "OutputFile",
    "Read",
    "SampleDataError",
    "SampleDataResult",
    "art_command",
    "art_seed",
    "art_version",
    "coverage_for",
    "deal",
    "find_art",
    "generate",
    "genome_fasta",
    "gzip_bytes",
    "load_labels",
    "main",
    "package_version",
    "parse_fastq",
    "read_id",
    "render_labels",
    "render_readme",
    "render_reads",
    "sequence_stats",
    "simulate",
    "split_counts",
]
