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

from ._common import ENCODE, MAX_HASH_K, check_inputs, jit, mix64, seed_key

DEFAULT_SKETCH_SIZE = 64
# The largest float32 below 1.0: scaled hashes must never collide with the padding.
_BELOW_ONE = np.float32(1.0 - 2.0**-24)


@jit
def _embed(
    seq: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    k: int,
    canonical: bool,
    key: np.uint64,
    out: NDArray[np.float32],
) -> None:
    n = offsets.shape[0] - 1
    size = out.shape[1]
    two = np.uint64(2)
    three = np.uint64(3)
    mask = (np.uint64(1) << np.uint64(2 * k)) - np.uint64(1)
    top = np.uint64(2 * (k - 1))
    shift = np.uint64(11)
    scale = 2.0**-53
    longest = 0
    for r in range(n):
        longest = max(longest, offsets[r + 1] - offsets[r])
    hashes = np.empty(max(longest, 1), dtype=np.uint64)
    for r in range(n):
        fwd = np.uint64(0)
        rev = np.uint64(0)
        run = 0
        m = 0
        for i in range(offsets[r], offsets[r + 1]):
            b = ENCODE[seq[i]]
            if b > 3:
                run = 0
                continue
            base = np.uint64(b)
            fwd = ((fwd << two) | base) & mask
            rev = (rev >> two) | ((three - base) << top)
            run += 1
            if run >= k:
                kmer = min(fwd, rev) if canonical else fwd
                hashes[m] = mix64(kmer ^ key)
                m += 1
        # Reads are short, so sorting all hashes beats keeping a bounded heap.
        found = hashes[:m]
        found.sort()
        row = out[r]
        j = 0
        for t in range(m):
            if j == size:
                break
            if t > 0 and found[t] == found[t - 1]:
                continue
            row[j] = min(np.float32((found[t] >> shift) * scale), _BELOW_ONE)
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
        _embed(seq, offsets, self.k, self.canonical, seed_key(self.seed), out)
        return out
