"""Read abundance: how often, across the whole input, a read's k-mers occur.

Composition alone cannot tell apart genomes of similar GC, and it splits a
genome whose composition drifts along it (phage lambda's two halves). How
deeply a genome is sequenced is a second, independent signal: reads of a
genome at 20x coverage share their k-mers with ~20 other reads, reads of a
genome at 0.1x with none. Metagenomic binners use exactly this (coverage
next to tetranucleotide frequencies). Stage 1 therefore makes two passes
when `embedding.abundance` is on: the first counts canonical k-mers (k = 21
by default) into a fixed-size table of 16-bit saturating counts, keeping only the 1/`scaled` of k-mers
whose hash falls below a threshold (FracMinHash-style, so a read still has
~(length - k) / scaled sampled k-mers and the table stays small); the
per-file tables add up into one. The second pass gives each read the median
table count of its sampled k-mers, minus itself and the table's expected
collision background, as log1p(max(median - 1 - background, 0)): 0 for a
read seen once, about ln(c) for a read from a genome at coverage c. The
column is appended to the composition vector, scaled by `weight` times the
composition's total standard deviation so that one weight suits short and
long reads alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ._common import MAX_HASH_K, check_inputs, jit, longest_read, mix64, packed_kmers

if TYPE_CHECKING:
    from . import Embedder

DEFAULT_K = 21
DEFAULT_SCALED = 8
DEFAULT_TABLE_BITS = 22
MIN_K = 11
MAX_TABLE_BITS = 28


COUNT_MAX = np.iinfo(np.uint16).max


@jit
def _sampled_slots(
    seq: NDArray[np.uint8],
    start: int,
    end: int,
    k: int,
    threshold: np.uint64,
    mask: np.uint64,
    codes: NDArray[np.uint64],
    slots: NDArray[np.int64],
) -> int:
    """Write the table slots of the sampled canonical k-mers of seq[start:end]; return how many."""
    m = packed_kmers(seq, start, end, k, True, codes)
    c = 0
    for j in range(m):
        h = mix64(codes[j])
        # Branch-free: the slot is always written, and kept only when sampled.
        slots[c] = np.int64(h & mask)
        c += int(h < threshold)
    return c


@jit
def _count(
    seq: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    k: int,
    threshold: np.uint64,
    table: NDArray[np.uint16],
    codes: NDArray[np.uint64],
    slots: NDArray[np.int64],
) -> int:
    """Add every sampled k-mer of every read to `table`; return how many were added."""
    mask = np.uint64(table.shape[0] - 1)
    added = 0
    for r in range(offsets.shape[0] - 1):
        c = _sampled_slots(seq, offsets[r], offsets[r + 1], k, threshold, mask, codes, slots)
        # Independent read-modify-writes in a tight loop let the CPU overlap
        # their cache misses; saturate rather than wrap (a wrapped count reads as rare).
        for j in range(c):
            v = table[slots[j]]
            table[slots[j]] = v + np.uint16(v < COUNT_MAX)
        added += c
    return added


@jit
def _medians(
    seq: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    k: int,
    threshold: np.uint64,
    table: NDArray[np.uint16],
    codes: NDArray[np.uint64],
    slots: NDArray[np.int64],
    counts: NDArray[np.float64],
    out: NDArray[np.float64],
) -> None:
    """out[r] = median table count of read r's sampled k-mers, or 0 if it has none."""
    mask = np.uint64(table.shape[0] - 1)
    for r in range(offsets.shape[0] - 1):
        c = _sampled_slots(seq, offsets[r], offsets[r + 1], k, threshold, mask, codes, slots)
        for j in range(c):
            counts[j] = table[slots[j]]
        # Insertion sort: a read has a few dozen sampled k-mers, and np.median
        # would allocate for each read.
        for i in range(1, c):
            x = counts[i]
            j = i - 1
            while j >= 0 and counts[j] > x:
                counts[j + 1] = counts[j]
                j -= 1
            counts[j + 1] = x
        if c == 0:
            out[r] = 0.0
        elif c % 2 == 1:
            out[r] = counts[c // 2]
        else:
            out[r] = 0.5 * (counts[c // 2 - 1] + counts[c // 2])


@dataclass(frozen=True)
class AbundanceParams:
    """What the counting and the lookup must agree on (from `embedding.abundance`)."""

    k: int = DEFAULT_K
    scaled: int = DEFAULT_SCALED
    table_bits: int = DEFAULT_TABLE_BITS

    def __post_init__(self) -> None:
        if not MIN_K <= self.k <= MAX_HASH_K:
            raise ValueError(f"abundance: k must be {MIN_K}..{MAX_HASH_K}, got {self.k}")
        if self.scaled < 1:
            raise ValueError(f"abundance: scaled must be >= 1, got {self.scaled}")
        if not 8 <= self.table_bits <= MAX_TABLE_BITS:
            raise ValueError(f"abundance: table_bits must be 8..{MAX_TABLE_BITS}")

    @property
    def threshold(self) -> np.uint64:
        """Keep a k-mer when its 64-bit hash is below this: a 1/scaled fraction."""
        return np.uint64(((1 << 64) - 1) // self.scaled)

    def scratch(self, offsets: NDArray[np.int64]) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
        """Per-call buffers for one read's k-mer codes and sampled slots."""
        n = longest_read(offsets)
        return np.empty(n, np.uint64), np.empty(n, np.int64)


@dataclass
class KmerCounter:
    """One task's share of the first pass: a count table over the reads it saw."""

    params: AbundanceParams
    table: NDArray[np.uint16] = field(init=False)
    added: int = 0

    def __post_init__(self) -> None:
        self.table = np.zeros(1 << self.params.table_bits, np.uint16)

    def add(self, seq: NDArray[np.uint8], offsets: NDArray[np.int64]) -> None:
        seq, offsets = check_inputs(seq, offsets)
        p = self.params
        codes, slots = p.scratch(offsets)
        self.added += int(_count(seq, offsets, p.k, p.threshold, self.table, codes, slots))


@dataclass(frozen=True)
class AbundanceProfile:
    """The merged first pass: what the second pass looks each read up in."""

    params: AbundanceParams
    table: NDArray[np.uint16]
    added: int
    scale: float

    @property
    def background(self) -> float:
        """Expected count a cell gets from other k-mers that hash to it."""
        return self.added / int(self.table.shape[0])

    def values(self, seq: NDArray[np.uint8], offsets: NDArray[np.int64]) -> NDArray[np.float32]:
        """The unscaled feature, log1p(max(median count - 1 - background, 0)), per read."""
        seq, offsets = check_inputs(seq, offsets)
        p = self.params
        codes, slots = p.scratch(offsets)
        medians = np.empty(offsets.shape[0] - 1, np.float64)
        counts = np.empty(codes.shape[0], np.float64)
        _medians(seq, offsets, p.k, p.threshold, self.table, codes, slots, counts, medians)
        excess = np.maximum(medians - 1.0 - self.background, 0.0)
        return np.log1p(excess).astype(np.float32)


def composition_scale(n: int, s1: NDArray[np.float64], s2: NDArray[np.float64]) -> float:
    """Total standard deviation of the composition vectors from their moments (1.0 if none)."""
    if n < 2:
        return 1.0
    mean = s1 / n
    var = float(np.maximum(s2 / n - mean * mean, 0.0).sum())
    return float(np.sqrt(var)) if var > 0 else 1.0


@dataclass(frozen=True)
class WithAbundance:
    """An embedder whose rows are the base embedder's plus one scaled abundance column."""

    base: Embedder
    profile: AbundanceProfile

    @property
    def name(self) -> str:
        return f"{self.base.name}+abundance"

    @property
    def dim(self) -> int:
        return self.base.dim + 1

    def embed(self, seq: NDArray[np.uint8], offsets: NDArray[np.int64]) -> NDArray[np.float32]:
        composition = self.base.embed(seq, offsets)
        out = np.empty((composition.shape[0], self.dim), np.float32)
        out[:, :-1] = composition
        out[:, -1] = self.profile.scale * self.profile.values(seq, offsets)
        return out
