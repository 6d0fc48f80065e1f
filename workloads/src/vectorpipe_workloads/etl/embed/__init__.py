"""Read embedders: turn a batch of reads into an (n, dim) float32 matrix.

All embedders take the columnar form `readers.ReadBatch` carries — ``seq``, a
uint8 buffer of every read's bytes, and ``offsets``, n + 1 int64 positions so
read i is ``seq[offsets[i]:offsets[i + 1]]`` — and run one numba kernel over
it (compiled on first use and cached on disk, releasing the GIL). Three
methods: ``kmer`` (exact k-mer frequencies or their CLR, k = 2..8, the
default), ``hashed`` (LSHVec-style signed feature hashing, as the reference
study did with 15-mers) and ``minhash`` (bottom-s sketches). `make_embedder`
builds one from a pipeline spec's ``embedding`` block and rejects parameters
that do not apply to the method, so a bad spec fails before any data moves.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from .hashed import DEFAULT_DIM, HashedEmbedder
from .kmer import KmerEmbedder, kmer_dim
from .minhash import DEFAULT_SKETCH_SIZE, MinHashEmbedder

__all__ = [
    "METHODS",
    "Embedder",
    "HashedEmbedder",
    "KmerEmbedder",
    "MinHashEmbedder",
    "kmer_dim",
    "make_embedder",
]

METHODS = ("kmer", "hashed", "minhash")


@runtime_checkable
class Embedder(Protocol):
    """What every embedding method provides."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, seq: NDArray[np.uint8], offsets: NDArray[np.int64]) -> NDArray[np.float32]:
        """Embed the n reads described by (seq, offsets) into a C-contiguous (n, dim) array."""
        ...


def make_embedder(
    method: str,
    *,
    k: int,
    canonical: bool = True,
    transform: str = "none",
    dim: int | None = None,
    sketch_size: int | None = None,
    seed: int = 0,
) -> Embedder:
    """Build an embedder; raises ValueError for unknown methods or inapplicable options.

    ``dim`` is derived for ``kmer`` and ``minhash`` (passing it is allowed only
    if it matches) and chosen for ``hashed`` (default 100). ``transform`` only
    applies to ``kmer``; ``sketch_size`` only to ``minhash`` (default 64);
    ``seed`` is ignored by ``kmer``, which has no randomness.
    """
    if method == "kmer":
        if sketch_size is not None:
            raise ValueError("kmer: sketch_size does not apply")
        if transform not in ("none", "clr"):
            raise ValueError(f"kmer: transform must be 'none' or 'clr', got {transform!r}")
        kmer = KmerEmbedder(k, canonical, "clr" if transform == "clr" else "none")
        if dim is not None and dim != kmer.dim:
            raise ValueError(f"kmer: dim is derived ({kmer.dim} for k={k}), got {dim}")
        return kmer
    if transform != "none":
        raise ValueError(f"{method}: transform {transform!r} only applies to kmer")
    if method == "hashed":
        if sketch_size is not None:
            raise ValueError("hashed: sketch_size does not apply")
        return HashedEmbedder(k, DEFAULT_DIM if dim is None else dim, canonical, seed)
    if method == "minhash":
        size = DEFAULT_SKETCH_SIZE if sketch_size is None else sketch_size
        if dim is not None and dim != size:
            raise ValueError(f"minhash: dim equals sketch_size ({size}), got {dim}")
        return MinHashEmbedder(k, size, canonical, seed)
    raise ValueError(f"unknown embedding method {method!r}; expected one of {', '.join(METHODS)}")
