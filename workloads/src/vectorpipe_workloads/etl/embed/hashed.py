"""LSHVec-style hashed k-mer embedding (feature hashing), for parity with the
reference study, which embedded 15-mers this way.

Every valid k-mer (k = 1..31; windows containing N or any non-ACGT byte are
skipped) is 2-bit packed into a uint64, replaced by the smaller of itself and
its reverse complement when ``canonical`` (so a read and its reverse
complement embed identically), and hashed with splitmix64's mixer after XOR
with a key derived from ``seed``. The hash's low 32 bits pick the bucket by
multiply-shift, ``(low32 * dim) >> 32`` (uniform like ``% dim``, without a
division), and bit 63 the sign (+1 if clear, -1 if set): signed feature
hashing, which keeps collisions unbiased. Each row is then scaled to unit L2
norm. A read with no valid k-mer (shorter than k, or all N), or whose signed
counts cancel out exactly, gets an all-zero row. The hash is this module's own
(not the reference's), so vectors are comparable across VectorPipe runs with
the same k, dim and seed, not with the reference's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._common import MAX_HASH_K, check_inputs, jit, longest_read, mix64, packed_kmers, seed_key

DEFAULT_DIM = 100
_SIGN = np.array([1.0, -1.0], dtype=np.float32)  # indexed by hash bit 63: no branch


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
    dim = np.uint64(out.shape[1])
    low32 = np.uint64(0xFFFFFFFF)
    codes = np.empty(longest, dtype=np.uint64)
    for r in range(n):
        row = out[r]
        m = packed_kmers(seq, offsets[r], offsets[r + 1], k, canonical, codes)
        for t in range(m):
            h = mix64(codes[t] ^ key)
            row[((h & low32) * dim) >> np.uint64(32)] += _SIGN[h >> np.uint64(63)]
        norm = 0.0
        for j in range(row.shape[0]):
            norm += float(row[j]) * float(row[j])
        if norm > 0.0:
            scale = np.float32(1.0 / math.sqrt(norm))
            for j in range(row.shape[0]):
                row[j] *= scale


@dataclass(frozen=True)
class HashedEmbedder:
    """Signed feature hashing of k-mers into ``dim`` buckets; see the module docstring."""

    k: int
    dim: int = DEFAULT_DIM
    canonical: bool = True
    seed: int = 0
    name: str = field(default="hashed", init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= MAX_HASH_K:
            raise ValueError(f"hashed: k must be in 1..{MAX_HASH_K}, got {self.k}")
        if not 1 <= self.dim <= 2**31:
            raise ValueError(f"hashed: dim must be in 1..2**31, got {self.dim}")

    def embed(self, seq: NDArray[np.uint8], offsets: NDArray[np.int64]) -> NDArray[np.float32]:
        seq, offsets = check_inputs(seq, offsets)
        out = np.zeros((offsets.shape[0] - 1, self.dim), dtype=np.float32)
        _embed(
            seq, offsets, self.k, self.canonical, seed_key(self.seed), longest_read(offsets), out
        )
        return out
