"""The fast reader path (block reads + numba scanner) against the needletail path.

Every case is read twice: through `iter_batches` (fast path, falling back to
needletail at the first record outside its subset) and through needletail
alone (`readers._slow_batches`); ids, sequence bytes, offsets, batch
boundaries, embeddings and errors must be identical. The block-boundary cases
drive `fast_batches` with blocks of a few bytes so records, lines and '\\r\\n'
pairs straddle blocks.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from vectorpipe_workloads.etl import readers
from vectorpipe_workloads.etl.embed import KmerEmbedder
from vectorpipe_workloads.etl.readers import (
    InputFormatError,
    ReadBatch,
    count_records,
    iter_batches,
)
from vectorpipe_workloads.etl.readers_fast import Batch, Stop, fast_batches

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
Seen = tuple[list[ReadBatch], str | None]


def generated(rng: np.random.Generator, n: int, fasta: bool, crlf: bool) -> bytes:
    """Reads with lowercase, N, gap letters, empty sequences and headers with descriptions."""
    nl = "\r\n" if crlf else "\n"
    out = []
    for i in range(n):
        length = int(rng.integers(0, 200)) if i % 17 else 0
        if fasta and length == 0:
            length = 1  # a FASTA header without sequence lines is needletail's quirk
        seq = "".join(rng.choice(list("ACGTacgtNn-.*"), size=length))
        header = f"r{i}" + (f" desc {i}\tx" if i % 3 else "")
        if fasta:
            width = int(rng.integers(1, 90))
            lines = [seq[j : j + width] for j in range(0, len(seq), width)]
            out.append(f">{header}{nl}" + "".join(line + nl for line in lines))
        else:
            plus = "+" + (header if i % 5 == 0 else "")
            out.append(f"@{header}{nl}{seq}{nl}{plus}{nl}{'I' * len(seq)}{nl}")
    return "".join(out).encode()


def collect(batches: Iterable[ReadBatch]) -> Seen:
    seen: list[ReadBatch] = []
    try:
        for b in batches:
            seen.append(b)
    except InputFormatError as err:
        return seen, str(err)
    return seen, None


def assert_same(fast: Seen, slow: Seen) -> None:
    assert fast[1] == slow[1]
    assert len(fast[0]) == len(slow[0])
    emb = KmerEmbedder(4)
    for a, b in zip(fast[0], slow[0], strict=True):
        assert (a.source, a.first_record) == (b.source, b.first_record)
        assert a.ids == b.ids
        assert a.id_array.equals(b.id_array)
        assert bytes(a.seq) == bytes(b.seq)
        assert np.array_equal(a.offsets, b.offsets)
        assert np.array_equal(emb.embed(a.seq, a.offsets), emb.embed(b.seq, b.offsets))


def compare(path: Path, batch_size: int) -> None:
    fast = collect(iter_batches(path, source="x://in", batch_size=batch_size))
    slow = collect(readers._slow_batches(path, "x://in", batch_size, 0))
    assert_same(fast, slow)


def fast_only(data: bytes, gz: bool, batch_size: int, block: int) -> list[Batch | Stop]:
    return list(fast_batches(io.BytesIO(data), gz, batch_size, block))


@pytest.mark.parametrize("name", ["sample_a.fastq.gz", "sample_b.fastq.gz", "sample_c.fasta"])
def test_examples_match_needletail(name: str) -> None:
    path = EXAMPLES / name
    blob = path.read_bytes()
    got = fast_only(blob, name.endswith(".gz"), 1000, 1 << 16)
    assert got and not any(isinstance(g, Stop) for g in got)  # the fast path read it all
    for batch_size in (1000, 65536):
        compare(path, batch_size)


@pytest.mark.parametrize("fasta", [False, True], ids=["fastq", "fasta"])
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_generated_match_needletail(tmp_path: Path, fasta: bool, crlf: bool, gz: bool) -> None:
    data = generated(np.random.default_rng(7), 500, fasta, crlf)
    path = tmp_path / ("in.fa" if fasta else "in.fq")
    path.write_bytes(gzip.compress(data) if gz else data)
    got = fast_only(path.read_bytes(), gz, 64, 4096)
    assert sum(len(g[0]) for g in got if not isinstance(g, Stop)) == 500
    for batch_size in (1, 7, 64, 500, 501):
        compare(path, batch_size)
    assert count_records(path) == 500


@pytest.mark.parametrize("fasta", [False, True], ids=["fastq", "fasta"])
@pytest.mark.parametrize("block", [1, 2, 3, 5, 13, 64])
def test_block_boundaries(tmp_path: Path, fasta: bool, block: int) -> None:
    data = generated(np.random.default_rng(block), 60, fasta, crlf=block % 2 == 1)
    path = tmp_path / "in.fx"
    path.write_bytes(data)
    slow = collect(readers._slow_batches(path, "x", 8, 0))[0]
    for gz in (False, True):
        blob = gzip.compress(data) + (gzip.compress(b"") if gz else b"")
        got = fast_only(blob if gz else data, gz, 8, block)
        assert len(got) == len(slow)
        for g, s in zip(got, slow, strict=True):
            assert not isinstance(g, Stop)
            ids, seq, offsets = g
            assert ids.to_pylist() == s.ids
            assert bytes(seq) == bytes(s.seq) and np.array_equal(offsets, s.offsets)


def test_multi_member_gzip(tmp_path: Path) -> None:
    a = generated(np.random.default_rng(1), 40, False, False)
    b = generated(np.random.default_rng(2), 40, False, True).replace(b"@r", b"@s")
    path = tmp_path / "two.fq.gz"
    path.write_bytes(gzip.compress(a) + gzip.compress(b))
    compare(path, 16)
    assert count_records(path) == 80


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"@a\nACGT\n+\nIIII\n@b\nAC\n+\nII", id="no-final-newline"),
        pytest.param(b">a\nAC\n\nGT\n>b\nA\n", id="fasta-blank-line"),
        pytest.param(b">a\nAC\n>b\n>c\nA\n", id="fasta-empty-record"),
        pytest.param(b"@a\nACGT\n+\nIIII\n\n", id="trailing-blank"),
        pytest.param("@é x\nAC\n+\nII\n@b\nA\n+\nI\n".encode(), id="non-ascii-header"),
        pytest.param(b"@a\nAC\n+\nII\n@b\nA\xffC\n+\nIII\n", id="non-ascii-seq"),
        pytest.param(b"@a\nAC\n+\nII\n@b\nA C\n+\nIII\n", id="space-in-seq"),
        pytest.param(b"@a\nACGT\n+\nIII\n", id="qual-short"),
        pytest.param(b"@a\nAC\n+\nII\n@b\nAC\n-\nII\n", id="bad-separator"),
        pytest.param(b"@a\nAC\n+\nII\nb\nAC\n+\nII\n", id="bad-header"),
        pytest.param(b"@a\nAC\n+\nII\n@b\nAC\n", id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"@", id="one-byte"),
        pytest.param(b"hello\n", id="not-fastx"),
    ],
)
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_fallback_matches_needletail(tmp_path: Path, data: bytes, gz: bool) -> None:
    path = tmp_path / "odd.fq"
    path.write_bytes(gzip.compress(data) if gz else data)
    for batch_size in (1, 2, 100):
        compare(path, batch_size)
    try:
        fast_count: int | str = count_records(path)
    except InputFormatError as err:
        fast_count = str(err)
    try:
        slow_count: int | str = readers._count(path, str(path), 0)
    except InputFormatError as err:
        slow_count = str(err)
    assert fast_count == slow_count


def test_corrupt_gzip_record_agrees(tmp_path: Path) -> None:
    data = generated(np.random.default_rng(3), 3000, False, False)
    blob = bytearray(gzip.compress(data))
    blob[len(blob) // 2] ^= 0xFF
    path = tmp_path / "bad.fq.gz"
    path.write_bytes(bytes(blob))
    numbers = set()
    for batch_size in (1, 100, 65536):
        seen, err = collect(iter_batches(path, batch_size=batch_size))
        assert err is not None and "compressed stream" in err
        numbers.add(err)
        assert sum(len(b) for b in seen) < 3000
    with pytest.raises(InputFormatError) as counted:
        count_records(path)
    assert numbers == {str(counted.value)}
