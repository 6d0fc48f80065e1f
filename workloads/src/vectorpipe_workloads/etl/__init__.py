"""Stage 1: reads to k-mer embedding shards, on Ray.

`readers` streams FASTQ/FASTA files (plain or gzip) into columnar batches, with
`readers_fast` as its numba fast path; `embed` turns a batch into an (n, dim)
float32 matrix; `kmer_counting` is the first pass that counts k-mers over
every file when `embedding.abundance` is on; `shard_writers` plans balanced shards
and writes them as Parquet files or Lance fragments; `driver` runs the whole
stage as Ray tasks and writes `_manifest.json` last. What stage 1 hands to
stage 2 is defined outside this package: the manifest (`manifest`), the shard
schema (`shards`) and storage (`storage`).
"""

from __future__ import annotations

from vectorpipe_workloads.etl.driver import EmptyInputError, run_etl

__all__ = ["EmptyInputError", "run_etl"]
