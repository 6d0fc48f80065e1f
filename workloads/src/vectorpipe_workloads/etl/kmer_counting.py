"""Stage 1's first pass, run when `embedding.abundance` is on: count k-mers over every file.

One Ray task per input file streams it once, counting its sampled k-mers
into a table (`embed.abundance.KmerCounter`) and summing the composition
vectors of its first reads, so the driver learns the composition's spread
without embedding everything twice. The driver adds the tables as they
arrive (one at a time, so memory is one table plus one accumulator) and
builds the `AbundanceProfile` the second pass embeds with. This module also
turns an `EmbeddingSpec` into an embedder, with or without that profile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vectorpipe_api.pipeline import AbundanceSpec, EmbeddingSpec
from vectorpipe_workloads.etl.embed import Embedder, make_embedder
from vectorpipe_workloads.etl.embed.abundance import (
    COUNT_MAX,
    AbundanceParams,
    AbundanceProfile,
    KmerCounter,
    WithAbundance,
    composition_scale,
)
from vectorpipe_workloads.storage import InputFile, S3Config, Store

# Enough reads per file to estimate the composition's spread to a few percent.
SCALE_SAMPLE_READS = 20_000
SAMPLE_BLOCK_BYTES = 64 << 20


def abundance_params(spec: AbundanceSpec) -> AbundanceParams:
    return AbundanceParams(k=spec.k, scaled=spec.scaled, table_bits=spec.table_bits)


def base_embedder(embedding: EmbeddingSpec) -> Embedder:
    """The method's own embedder, without the abundance column."""
    return make_embedder(
        embedding.method,
        k=embedding.k,
        canonical=embedding.canonical,
        transform=embedding.transform,
        dim=embedding.dim,
        sketch_size=embedding.sketch_size,
        seed=embedding.seed,
    )


def embedder_for(embedding: EmbeddingSpec, profile: AbundanceProfile | None) -> Embedder:
    """What stage 1 embeds with: the base embedder, plus the abundance column if on."""
    base = base_embedder(embedding)
    if not embedding.abundance.enabled:
        return base
    if profile is None:
        raise ValueError("embedding.abundance is enabled but no first-pass profile was given")
    return WithAbundance(base, profile)


@dataclass(frozen=True)
class FileProfile:
    """One file's first pass: its count table and composition moments."""

    table: NDArray[np.uint16]
    added: int
    reads: int
    n: int
    s1: NDArray[np.float64]
    s2: NDArray[np.float64]


def profile_batches(
    batches: Iterable[tuple[NDArray[np.uint8], NDArray[np.int64]]], embedding: EmbeddingSpec
) -> FileProfile:
    """Count the sampled k-mers of (seq, offsets) batches and sum the first reads' vectors."""
    base = base_embedder(embedding)
    counter = KmerCounter(abundance_params(embedding.abundance))
    s1 = np.zeros(base.dim, np.float64)
    s2 = np.zeros(base.dim, np.float64)
    n = reads = 0
    step = max(1, SAMPLE_BLOCK_BYTES // (8 * base.dim))
    for seq, offsets in batches:
        counter.add(seq, offsets)
        reads += len(offsets) - 1
        take = min(SCALE_SAMPLE_READS - n, len(offsets) - 1)
        # Slices keep the float64 copy near SAMPLE_BLOCK_BYTES even at k = 8.
        for lo in range(0, max(take, 0), step):
            hi = min(take, lo + step)
            X = base.embed(seq, offsets[lo : hi + 1]).astype(np.float64)
            s1 += X.sum(axis=0)
            s2 += (X * X).sum(axis=0)
        n += max(take, 0)
    return FileProfile(counter.table, counter.added, reads, n, s1, s2)


def profile_file(
    s3: S3Config, file: InputFile, embedding: EmbeddingSpec, batch_size: int
) -> FileProfile:
    """`profile_batches` over one input file, streamed (runs as a Ray task)."""
    from vectorpipe_workloads.etl.readers import iter_batches

    with Store(s3).local_copy(file.uri) as path:
        batches = iter_batches(path, source=file.uri, batch_size=batch_size)
        return profile_batches(((b.seq, b.offsets) for b in batches), embedding)


class ProfileMerger:
    """Adds file profiles as they arrive; `profile()` gives the merged result."""

    def __init__(self, spec: AbundanceSpec, dim: int) -> None:
        self.spec = spec
        self.table = np.zeros(1 << spec.table_bits, np.uint64)
        self.added = 0
        self.n = 0
        self.s1 = np.zeros(dim, np.float64)
        self.s2 = np.zeros(dim, np.float64)

    def add(self, part: FileProfile) -> None:
        self.table += part.table
        self.added += part.added
        self.n += part.n
        self.s1 += part.s1
        self.s2 += part.s2

    def profile(self) -> AbundanceProfile:
        table = np.minimum(self.table, COUNT_MAX).astype(np.uint16)
        scale = self.spec.weight * composition_scale(self.n, self.s1, self.s2)
        return AbundanceProfile(abundance_params(self.spec), table, self.added, scale)
