"""LSHVec-style hashed k-mer embedding (feature hashing), for parity with the
reference study, which embedded 15-mers this way.

Every valid k-mer (k = 1..31; windows containing N or any non-ACGT byte are
skipped) is 2-bit packed into a uint64, replaced by the smaller of itself and
its reverse complement when ``canonical`` (so a read and its reverse
complement embed identically), and hashed with splitmix64's mixer after XOR
with a key derived from ``seed``. The low 32 bits of the hash pick the bucket
(``% dim``) and bit 63 the sign (+1 if clear, -1 if set), the usual signed
feature-hashing trick that keeps collisions unbiased. Each row is then scaled
to unit L2 norm. A read with no valid k-mer (shorter than k, or all N), or
whose signed counts cancel out exactly, gets an all-zero row. The hash is
fixed by this module (not the reference's hash), so vectors are comparable
across VectorPipe runs with the same k, dim and seed, not with the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._common import ENCODE, MAX_HASH_K, check_inputs, jit, mix64, seed_key

DEFAULT_DIM = 100


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
    dim = np.uint64(out.shape[1])
    # Every operand is uint64: mixing in a signed int would make numba go float.
    two = np.uint64(2)
    three = np.uint64(3)
    mask = (np.uint64(1) << np.uint64(2 * k)) - np.uint64(1)
    top = np.uint64(2 * (k - 1))
    low32 = np.uint64(0xFFFFFFFF)
    sign_bit = np.uint64(63)
    for r in range(n):
        row = out[r]
        fwd = np.uint64(0)
        rev = np.uint64(0)
        run = 0
        for i in range(offsets[r], offsets[r + 1]):
            b = ENCODE[seq[i]]
            if b > 3:
                run = 0
                continue
            base = np.uint64(b)
            fwd = ((fwd << two) | base) & mask
            # The reverse complement grows from the other end.
            rev = (rev >> two) | ((three - base) << top)
            run += 1
            if run >= k:
                kmer = min(fwd, rev) if canonical else fwd
                h = mix64(kmer ^ key)
                bucket = (h & low32) % dim
                if h >> sign_bit:
                    row[bucket] -= 1.0
                else:
                    row[bucket] += 1.0
        norm = 0.0
        for j in range(row.shape[0]):
            norm += float(row[j]) * float(row[j])
        if norm > 0.0:
            inv = 1.0 / math.sqrt(norm)
            for j in range(row.shape[0]):
                row[j] = row[j] * inv


@dataclass(frozen=True)
class HashedEmbedder:
    """Signed feature-hashing of k-mers into ``dim`` buckets; see the module docstring."""

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
        _embed(seq, offsets, self.k, self.canonical, seed_key(self.seed), out)
        return out
