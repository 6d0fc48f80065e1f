"""Bottom-s MinHash sketches of a read's k-mers, as fixed-length float32 vectors.

Every valid k-mer (k = 1..31; windows containing N or any non-ACGT byte are
skipped), canonical by default so a read and its reverse complement sketch
identically, is hashed exactly as in `hashed` (splitmix64 mixer, seed key).
The row holds the s = ``sketch_size`` smallest *distinct* hash values, sorted
ascending and scaled to [0, 1) as ``(h >> 11) * 2**-53`` rounded to float32
(clamped below 1.0); when a read has fewer than s distinct k-mers the tail is
padded with 1.0, so a read shorter than k (or all N) is a row of 1.0. The
fraction of equal leading values between two rows estimates their Jaccard
similarity; Euclidean distance on these rows is a rough proxy for clustering.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._common import MAX_HASH_K, check_inputs, jit, longest_read, mix64, packed_kmers, seed_key

DEFAULT_SKETCH_SIZE = 64
# The largest float32 below 1.0: scaled hashes must never collide with the padding.
_BELOW_ONE = np.float32(1.0 - 2.0**-24)


@jit
def _sort(
    hashes: NDArray[np.uint64], m: int, hist: NDArray[np.int64], out: NDArray[np.uint64]
) -> None:
    """Sort ``hashes[:m]`` into ``out[:m]``.

    The hashes are uniform, so one counting-sort pass on their top bits (about
    one value per bucket) leaves them nearly sorted and an insertion sort
    finishes in ~O(m): several times faster than a comparison sort here.
    """
    bits = 1
    while (1 << bits) < m:
        bits += 1
    shift = np.uint64(64 - bits)
    buckets = 1 << bits
    hist[: buckets + 1] = 0
    for t in range(m):
        hist[np.int64(hashes[t] >> shift) + 1] += 1
    for b in range(buckets):
        hist[b + 1] += hist[b]
    for t in range(m):
        slot = np.int64(hashes[t] >> shift)
        out[hist[slot]] = hashes[t]
        hist[slot] += 1
    for t in range(1, m):
        x = out[t]
        j = t
        while j > 0 and out[j - 1] > x:
            out[j] = out[j - 1]
            j -= 1
        out[j] = x


@jit
def _embed(
    seq: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    k: int,
    canonical: bool,
    key: np.uint64,
    longest: int,
    out: NDArray[np.float32],
) -> None:
    n = offsets.shape[0] - 1
    size = out.shape[1]
    shift = np.uint64(11)
    scale = 2.0**-53
    hashes = np.empty(longest, dtype=np.uint64)
    ordered = np.empty(longest, dtype=np.uint64)
    hist = np.empty(2 * longest + 2, dtype=np.int64)
    for r in range(n):
        m = packed_kmers(seq, offsets[r], offsets[r + 1], k, canonical, hashes)
        for t in range(m):
            hashes[t] = mix64(hashes[t] ^ key)
        _sort(hashes, m, hist, ordered)
        row = out[r]
        j = 0
        for t in range(m):
            if j == size:
                break
            if t > 0 and ordered[t] == ordered[t - 1]:
                continue
            row[j] = min(np.float32((ordered[t] >> shift) * scale), _BELOW_ONE)
            j += 1
        row[j:] = 1.0


@dataclass(frozen=True)
class MinHashEmbedder:
    """Bottom-s MinHash sketch as a vector; see the module docstring."""

    k: int
    sketch_size: int = DEFAULT_SKETCH_SIZE
    canonical: bool = True
    seed: int = 0
    name: str = field(default="minhash", init=False)
    dim: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= MAX_HASH_K:
            raise ValueError(f"minhash: k must be in 1..{MAX_HASH_K}, got {self.k}")
        if self.sketch_size < 1:
            raise ValueError(f"minhash: sketch_size must be >= 1, got {self.sketch_size}")
        object.__setattr__(self, "dim", self.sketch_size)

    def embed(self, seq: NDArray[np.uint8], offsets: NDArray[np.int64]) -> NDArray[np.float32]:
        seq, offsets = check_inputs(seq, offsets)
        out = np.empty((offsets.shape[0] - 1, self.dim), dtype=np.float32)
        _embed(
            seq, offsets, self.k, self.canonical, seed_key(self.seed), longest_read(offsets), out
        )
        return out
