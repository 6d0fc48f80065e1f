"""Shared plumbing for the numba embedders: the typed ``jit`` decorator, the
base-to-2-bit table, the 64-bit hash mixer, the rolling k-mer walk and input
checks. Every embedder walks each read once with a rolling 2-bit code (A=0,
C=1, G=2, T=3, first base most significant, so code order is lexicographic
order; lowercase acgt count too); any other byte (N, IUPAC codes, gaps) is
invalid, and no window that overlaps it is ever counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit
from numpy.typing import NDArray

_F = TypeVar("_F", bound=Callable[..., Any])

MASK64 = (1 << 64) - 1
MAX_HASH_K = 31  # 2 bits a base in a uint64, leaving the shifts defined


def jit(fn: _F) -> _F:
    """``numba.njit(cache=True, nogil=True)``, typed so mypy keeps the signature."""
    # nogil lets a Ray actor or a thread pool run several batches at once.
    return cast(_F, njit(cache=True, nogil=True)(fn))


def _encode_table() -> NDArray[np.uint8]:
    table = np.full(256, 4, dtype=np.uint8)
    for code, base in enumerate("ACGT"):
        table[ord(base)] = code
        table[ord(base.lower())] = code
    return table


# numba freezes module-level arrays into the compiled code as constants.
ENCODE = _encode_table()


@jit
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64's output function: a bijective, well-avalanched 64-bit mixer."""
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.uint64(z ^ (z >> np.uint64(31)))


def seed_key(seed: int) -> np.uint64:
    """The 64-bit value XOR-ed into every k-mer code before hashing (pure Python)."""
    z = (seed + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return np.uint64(z ^ (z >> 31))


def check_inputs(
    seq: NDArray[Any], offsets: NDArray[Any]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Validate the (seq, offsets) pair every embedder takes; O(n) numpy only."""
    if seq.dtype != np.uint8 or seq.ndim != 1:
        raise TypeError(f"seq must be a 1-D uint8 array, got {seq.dtype} with {seq.ndim} dims")
    if offsets.dtype != np.int64 or offsets.ndim != 1 or offsets.shape[0] < 1:
        raise TypeError("offsets must be a non-empty 1-D int64 array (n reads -> n + 1 offsets)")
    if offsets[0] < 0 or offsets[-1] > seq.shape[0] or np.any(offsets[1:] < offsets[:-1]):
        raise ValueError("offsets must be non-decreasing and lie within seq")
    return np.ascontiguousarray(seq), np.ascontiguousarray(offsets)


def longest_read(offsets: NDArray[np.int64]) -> int:
    """Length of the longest read (at least 1), to size per-call scratch buffers."""
    return max(1, int(np.max(np.diff(offsets), initial=0)))


@jit
def packed_kmers(
    seq: NDArray[np.uint8],
    start: int,
    end: int,
    k: int,
    canonical: bool,
    codes: NDArray[np.uint64],
) -> int:
    """Write the 2-bit codes of the valid k-mers of ``seq[start:end]`` (k <= 31), each
    replaced by its reverse complement's code when that is smaller and ``canonical``,
    into ``codes``; return how many there are."""
    two = np.uint64(2)
    three = np.uint64(3)
    mask = (np.uint64(1) << np.uint64(2 * k)) - np.uint64(1)
    top = np.uint64(2 * (k - 1))
    fwd = np.uint64(0)
    rev = np.uint64(0)
    # Branch-free validity, as in the kmer kernel: a window is valid when the
    # last non-ACGT byte is k or more positions back; an invalid window's slot
    # is overwritten by the next one.
    last_bad = start - 1
    m = 0
    for i in range(start, end):
        b = ENCODE[seq[i]]
        last_bad = i if b > 3 else last_bad
        base = np.uint64(b & 3)
        fwd = ((fwd << two) | base) & mask
        # The reverse complement grows from the other end.
        rev = (rev >> two) | ((three - base) << top)
        codes[m] = min(fwd, rev) if canonical else fwd
        m += (i - last_bad) >= k
    return m
