"""Exact k-mer frequency profiles (k = 2..8), the default stage-1 embedding.

Each read becomes a dense row of k-mer frequencies in lexicographic k-mer
order. With ``canonical=True`` a k-mer and its reverse complement share one
column (the lexicographically smaller of the two names it), so a read and its
reverse complement embed identically; there are (4^k + 4^(k/2)) / 2 columns
for even k (palindromes stand alone) and 4^k / 2 for odd k. Otherwise there
are 4^k columns. Windows that contain N or any other non-ACGT byte are
skipped; counts are divided by the number of valid windows so a row sums to 1.
``transform="clr"`` instead returns the centred log-ratio of the counts with a
pseudocount of 0.5, log(c + 0.5) - mean(log(c + 0.5)), whose row sums to 0. A
read shorter than k, or without a single valid window, gets an all-zero row in
both cases (the CLR of all-zero counts is exactly zero, so that is consistent).
Output is float32, n x dim: mind the memory at k >= 7 (dim 8192+) and embed
such batches in slices of a few thousand reads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ._common import ENCODE, check_inputs, jit

MIN_K = 2
MAX_K = 8
Transform = Literal["none", "clr"]


def revcomp_codes(codes: NDArray[np.int64], k: int) -> NDArray[np.int64]:
    """Reverse complement of 2-bit packed k-mer codes (vectorised)."""
    rc = np.zeros_like(codes)
    rest = codes.copy()
    for _ in range(k):
        # Complementing a 2-bit base is 3 - b; digits come off the end reversed.
        rc = (rc << 2) | (3 - (rest & 3))
        rest >>= 2
    return rc


@functools.cache
def _canonical_codes(k: int) -> NDArray[np.int64]:
    codes = np.arange(4**k, dtype=np.int64)
    return np.minimum(codes, revcomp_codes(codes, k))


@functools.cache
def column_table(k: int, canonical: bool) -> NDArray[np.uint32]:
    """Map every k-mer code to its output column (shared, read-only)."""
    if not canonical:
        table = np.arange(4**k, dtype=np.uint32)
    else:
        # Columns follow the sorted distinct canonical codes; np.unique's
        # inverse is exactly "rank of my canonical code".
        _, inverse = np.unique(_canonical_codes(k), return_inverse=True)
        table = inverse.astype(np.uint32)
    table.flags.writeable = False
    return table


def kmer_dim(k: int, canonical: bool = True) -> int:
    """Number of output columns, computed from the column table (not a formula)."""
    return int(column_table(k, canonical).max()) + 1


def _kmer_name(code: int, k: int) -> str:
    return "".join("ACGT"[(code >> (2 * (k - 1 - i))) & 3] for i in range(k))


# Up to this many columns (k <= 5) a row is finished with a dense, vectorised
# pass over the scratch counts; wider rows only touch the columns a read hit.
DENSE_MAX_DIM = 512


@jit
def _all_acgt(seq: NDArray[np.uint8], start: int, end: int) -> bool:
    # Branch-free so it vectorises; `| 32` folds upper case onto lower case.
    bad: np.bool_ = np.bool_(False)
    for i in range(np.uint64(start), np.uint64(end)):
        c = seq[i] | np.uint8(32)
        not_ac = (c != np.uint8(97)) & (c != np.uint8(99))
        bad |= not_ac & (c != np.uint8(103)) & (c != np.uint8(116))
    return not bad


@jit
def _count(
    seq: NDArray[np.uint8],
    start: int,
    end: int,
    k: int,
    columns: NDArray[np.uint32],
    counts: NDArray[np.uint32],
    wins: NDArray[np.uint32],
) -> int:
    """Add one read's valid windows to ``counts``, list their columns in ``wins``; return
    how many there were."""
    if end - start < k:
        return 0
    mask = np.uint64((1 << (2 * k)) - 1)
    two = np.uint64(2)
    code = np.uint64(0)
    m = 0
    if _all_acgt(seq, start, end):
        # The common case gets a loop with no validity bookkeeping at all.
        for i in range(np.uint64(start), np.uint64(start + k - 1)):
            code = (code << two) | np.uint64(ENCODE[seq[i]])
        for i in range(np.uint64(start + k - 1), np.uint64(end)):
            code = ((code << two) | np.uint64(ENCODE[seq[i]])) & mask
            col = columns[code]
            wins[m] = col
            counts[col] += np.uint32(1)
            m += 1
        return m
    # A window is valid when the last non-ACGT byte lies k or more positions
    # back. Branch-free: an invalid window still computes a (meaningless but
    # in-range) column, adds 0 to it, and its slot in wins is overwritten.
    last_bad = start - 1
    for i in range(start, end):
        b = ENCODE[seq[i]]
        last_bad = i if b > 3 else last_bad
        code = ((code << two) | np.uint64(b & 3)) & mask
        ok = (i - last_bad) >= k
        col = columns[code]
        wins[m] = col
        counts[col] += np.uint32(ok)
        m += ok
    return m


@jit
def _embed(
    seq: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    k: int,
    columns: NDArray[np.uint32],
    clr: bool,
    out: NDArray[np.float32],
) -> None:
    """Fill the zeroed ``out`` with one row per read."""
    n = offsets.shape[0] - 1
    dim = out.shape[1]
    longest = 1
    for r in range(n):
        longest = max(longest, offsets[r + 1] - offsets[r])
    # counts is a dense scratch row, all-zero between reads; wins lists the
    # column of every valid window so wide rows (k >= 6) are finished in
    # O(read length) instead of O(dim).
    counts = np.zeros(dim, dtype=np.uint32)
    wins = np.empty(longest, dtype=np.uint32)
    log_c = np.log(np.arange(longest + 1, dtype=np.float64) + 0.5)  # log(c + 0.5)
    dense = dim <= DENSE_MAX_DIM
    for r in range(n):
        m = _count(seq, offsets[r], offsets[r + 1], k, columns, counts, wins)
        if m == 0:
            continue
        row = out[r]
        if dense and not clr:
            scale = np.float32(1.0 / m)
            for j in range(dim):
                row[j] = counts[j] * scale
                counts[j] = 0
            continue
        if dense:
            logsum = 0.0
            for j in range(dim):
                logsum += log_c[counts[j]]
            mean = logsum / dim
            for j in range(dim):
                row[j] = log_c[counts[j]] - mean
                counts[j] = 0
            continue
        if not clr:
            inv = 1.0 / m
            for t in range(m):
                col = wins[t]
                row[col] = counts[col] * inv
        else:
            # A column seen c times appears c times in wins: adding log(c + .5)/c
            # and 1/c per window sums each distinct column exactly once.
            logsum = 0.0
            distinct = 0.0
            for t in range(m):
                c = counts[wins[t]]
                logsum += log_c[c] / c
                distinct += 1.0 / c
            logsum += (dim - round(distinct)) * log_c[0]
            mean = logsum / dim
            row[:] = log_c[0] - mean
            for t in range(m):
                col = wins[t]
                row[col] = log_c[counts[col]] - mean
        for t in range(m):
            counts[wins[t]] = 0


@dataclass(frozen=True)
class KmerEmbedder:
    """k-mer frequency (or CLR) embedder; see the module docstring."""

    k: int
    canonical: bool = True
    transform: Transform = "none"
    name: str = field(default="kmer", init=False)
    dim: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not MIN_K <= self.k <= MAX_K:
            raise ValueError(f"kmer: k must be in {MIN_K}..{MAX_K}, got {self.k}")
        if self.transform not in ("none", "clr"):
            raise ValueError(f"kmer: transform must be 'none' or 'clr', got {self.transform!r}")
        object.__setattr__(self, "dim", kmer_dim(self.k, self.canonical))

    def feature_names(self) -> list[str]:
        """The k-mer that names each output column, in column order."""
        codes = np.unique(_canonical_codes(self.k)) if self.canonical else range(4**self.k)
        return [_kmer_name(int(c), self.k) for c in codes]

    def embed(self, seq: NDArray[np.uint8], offsets: NDArray[np.int64]) -> NDArray[np.float32]:
        seq, offsets = check_inputs(seq, offsets)
        out = np.zeros((offsets.shape[0] - 1, self.dim), dtype=np.float32)
        _embed(
            seq,
            offsets,
            self.k,
            column_table(self.k, self.canonical),
            self.transform == "clr",
            out,
        )
        return out
