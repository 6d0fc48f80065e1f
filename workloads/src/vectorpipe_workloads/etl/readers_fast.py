"""The fast path of `readers.iter_batches`: block reads and a numba record scanner.

needletail hands Python one record object (and two str) per read, which costs
more than embedding the read; this module instead reads a plain or gzip file
in large byte blocks (gzip through the standard library's streaming zlib) and
lets one numba function find the records of a whole batch in the buffer,
copying the uppercased sequence bytes and the read names straight into flat
arrays, so no per-read Python object exists. It only accepts a strict, common
subset of FASTQ/FASTA (no blank or comment lines, single-line FASTQ, ASCII
headers whose only whitespace is space or tab, sequence letters or ``- . *``,
every line newline-terminated, '\\r\\n' allowed). At the first record outside
that subset it reports how many records it produced and stops; the caller
then finishes the file with needletail from that record, so every error and
every quirk stays exactly needletail's.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar, cast

import numpy as np
import pyarrow as pa
from numba import njit
from numpy.typing import NDArray

_F = TypeVar("_F", bound=Callable[..., Any])
U8 = NDArray[np.uint8]
I64 = NDArray[np.int64]

BLOCK = 1 << 22
# Parser status codes.
NEED_MORE, FULL, BAD = 0, 1, 2


def _jit(fn: _F) -> _F:
    # numba ships no type information; keep the Python signature for mypy.
    return cast(_F, njit(cache=True, nogil=True)(fn))


# The loops below index views from 0: with an index LLVM can prove non-negative,
# numba's negative-index wraparound disappears and the loops vectorise.


@_jit
def _line_end(buf: U8, pos: int, end: int) -> int:
    """Index of the first newline at or after ``pos``, or -1."""
    v = buf[pos:end]
    size = v.shape[0]
    i = 0
    # 32 bytes at a time with no early exit inside, so LLVM vectorises the test.
    while i + 32 <= size:
        hit = np.uint8(0)
        for j in range(32):
            hit |= np.uint8(v[i + j] == 10)
        if hit:
            break
        i += 32
    while i < size:
        if v[i] == 10:
            return pos + i
        i += 1
    return -1


@_jit
def _has_newline(buf: U8, pos: int, stop: int) -> bool:
    v = buf[pos:stop]
    hit = np.uint8(0)
    for i in range(v.shape[0]):
        hit |= np.uint8(v[i] == 10)
    return bool(hit != 0)


@_jit
def _header(buf: U8, pos: int, stop: int, ids: U8, nid: int) -> int:
    """Copy the name of the header ``buf[pos:stop]`` to ``ids[nid:]``; -1 if unusual."""
    j = pos
    while j < stop and buf[j] != 32 and buf[j] != 9:
        c = buf[j]
        if c < 32 or c > 126:
            return -1
        ids[nid] = c
        nid += 1
        j += 1
    for i in range(j, stop):
        c = buf[i]
        if (c < 32 and c != 9) or c > 126:
            return -1
    return nid


@_jit
def _copy_seq(buf: U8, pos: int, stop: int, seq: U8, ns: int) -> int:
    """Append ``buf[pos:stop]`` uppercased to ``seq[ns:]``; -1 on a non-sequence byte."""
    # Branch-free uint8 arithmetic (no bools) so LLVM vectorises it.
    v = buf[pos:stop]
    out = seq[ns : ns + v.shape[0]]
    bad = np.uint8(0)
    for i in range(v.shape[0]):
        c = v[i]
        lo = np.uint8(np.uint8(c - np.uint8(97)) < np.uint8(26))
        up = np.uint8(np.uint8(c - np.uint8(65)) < np.uint8(26))
        gap = np.uint8(c == 45) | np.uint8(c == 46) | np.uint8(c == 42)
        bad |= np.uint8(1) ^ (lo | up | gap)
        out[i] = c - (lo << np.uint8(5))
    return -1 if bad else ns + v.shape[0]


@_jit
def _stripped(buf: U8, pos: int, nl: int) -> int:
    # needletail drops one '\r' before the '\n'.
    return nl - 1 if nl > pos and buf[nl - 1] == 13 else nl


@_jit
def parse_fastq(
    buf: U8, pos: int, limit: int, seq: U8, seq_off: I64, ids: U8, id_off: I64
) -> tuple[int, int, int]:
    """Parse up to ``limit`` records from ``buf[pos:]``: (records, next pos, status).

    Offsets arrays hold ``limit + 1`` entries with entry 0 already set.
    """
    end = buf.shape[0]
    n = 0
    while n < limit:
        if pos >= end:
            return n, pos, NEED_MORE
        if buf[pos] != 64:
            return n, pos, BAD
        l1 = _line_end(buf, pos, end)
        l2 = _line_end(buf, l1 + 1, end) if l1 >= 0 else -1
        if l2 < 0 or l2 + 1 >= end:
            return n, pos, NEED_MORE
        if buf[l2 + 1] != 43:
            return n, pos, BAD
        l3 = _line_end(buf, l2 + 1, end)
        if l3 < 0:
            return n, pos, NEED_MORE
        s_end = _stripped(buf, l1 + 1, l2)
        # The quality line must end right where the sequence length says: look
        # there instead of scanning for its newline.
        q = l3 + 1
        q_end = q + s_end - (l1 + 1)
        if q_end >= end or (buf[q_end] == 13 and q_end + 1 >= end):
            return n, pos, NEED_MORE
        if buf[q_end] == 13 and buf[q_end + 1] == 10:
            l4 = q_end + 1
        elif buf[q_end] == 10 and (q_end == q or buf[q_end - 1] != 13):
            l4 = q_end
        else:
            return n, pos, BAD
        if _has_newline(buf, q, q_end):
            return n, pos, BAD
        nid = _header(buf, pos + 1, _stripped(buf, pos, l1), ids, id_off[n])
        if nid < 0:
            return n, pos, BAD
        ns = _copy_seq(buf, l1 + 1, s_end, seq, seq_off[n])
        if ns < 0:
            return n, pos, BAD
        n += 1
        id_off[n] = nid
        seq_off[n] = ns
        pos = l4 + 1
    return n, pos, FULL


@_jit
def parse_fasta(
    buf: U8, pos: int, limit: int, eof: bool, seq: U8, seq_off: I64, ids: U8, id_off: I64
) -> tuple[int, int, int]:
    """`parse_fastq` for FASTA; a record is complete at the next '>' line or at ``eof``."""
    end = buf.shape[0]
    n = 0
    while n < limit:
        if pos >= end:
            return n, pos, NEED_MORE
        if buf[pos] != 62:
            return n, pos, BAD
        l1 = _line_end(buf, pos, end)
        if l1 < 0:
            return n, pos, BAD if eof else NEED_MORE
        nid = _header(buf, pos + 1, _stripped(buf, pos, l1), ids, id_off[n])
        if nid < 0:
            return n, pos, BAD
        ns = seq_off[n]
        p = l1 + 1
        lines = 0
        while p < end and buf[p] != 62:
            nl = _line_end(buf, p, end)
            if nl < 0:
                return n, pos, BAD if eof else NEED_MORE
            stop = _stripped(buf, p, nl)
            if stop == p:
                return n, pos, BAD  # blank lines: needletail's business
            ns = _copy_seq(buf, p, stop, seq, ns)
            if ns < 0:
                return n, pos, BAD
            lines += 1
            p = nl + 1
        if p >= end and not eof:
            return n, pos, NEED_MORE
        if lines == 0:
            return n, pos, BAD  # a header without sequence: needletail's quirks
        n += 1
        id_off[n] = nid
        seq_off[n] = ns
        pos = p
    return n, pos, FULL


def _plain_blocks(fh: BinaryIO, block: int) -> Iterator[bytes]:
    while chunk := fh.read(block):
        yield chunk


def _gzip_blocks(fh: BinaryIO, block: int) -> Iterator[bytes]:
    """Decompressed blocks of a (multi-member) gzip stream; zlib.error if it is broken."""
    d: Any = None  # between members
    while True:
        data = fh.read(max(1, block // 4))
        if not data:
            if d is not None:
                # Output held back by the max_length bound comes out here.
                if out := d.flush():
                    yield out
                if not d.eof:
                    raise zlib.error("truncated gzip stream")
            return
        while data:
            if d is None:
                d = zlib.decompressobj(31)
            # Bounded output, so a highly compressible block cannot blow up memory.
            out = d.decompress(data, block)
            if out:
                yield out
            if d.eof:
                data = d.unused_data
                d = None
            else:
                data = d.unconsumed_tail


def id_array(ids: U8, id_off: I64, n: int) -> pa.StringArray:
    offsets = id_off[: n + 1].astype(np.int32)
    data = ids[: int(id_off[n])].tobytes()
    return cast(
        pa.StringArray,
        pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)),
    )


Batch = tuple[pa.StringArray, U8, I64]


@dataclass(frozen=True)
class Stop:
    """Where the fast path gave up: ``pending`` complete records of the unfinished batch
    (not yielded) came before it; ``broken`` says the gzip stream itself is corrupt or
    truncated, otherwise a record (or an empty input) is outside the strict subset."""

    pending: int
    broken: bool


def fast_batches(
    fh: BinaryIO, gz: bool, batch_size: int, block: int = BLOCK
) -> Iterator[Batch | Stop]:
    """Yield (ids, uppercased seq, offsets) batches of ``batch_size`` reads (the last may be
    short) for as long as the strict subset holds, then a `Stop` if it did not to the end;
    the reads of the batch the `Stop` interrupts are not yielded."""
    blocks = _gzip_blocks(fh, block) if gz else _plain_blocks(fh, block)
    try:
        first = next(blocks, b"")
    except zlib.error:
        yield Stop(0, True)
        return
    if first[:1] not in (b"@", b">"):
        yield Stop(0, False)
        return
    fasta = first[:1] == b">"
    buf = np.frombuffer(first, dtype=np.uint8)
    pos = 0
    eof = False
    while True:
        parts: list[Batch] = []
        got = 0
        status = FULL
        while got < batch_size:
            want = batch_size - got
            cap = buf.shape[0] - pos
            seq = np.empty(cap, dtype=np.uint8)
            ids = np.empty(cap, dtype=np.uint8)
            # Every record takes at least four bytes, so this never limits a parse.
            seq_off = np.zeros(min(want, cap // 2 + 1) + 1, dtype=np.int64)
            id_off = np.zeros_like(seq_off)
            lim = seq_off.shape[0] - 1
            if fasta:
                n, pos, status = parse_fasta(buf, pos, lim, eof, seq, seq_off, ids, id_off)
            else:
                n, pos, status = parse_fastq(buf, pos, lim, seq, seq_off, ids, id_off)
            if n:
                parts.append((id_array(ids, id_off, n), seq[: seq_off[n]], seq_off[: n + 1]))
                got += n
            if status == BAD:
                yield Stop(got, False)
                return
            if status == NEED_MORE:
                if eof:
                    if pos < buf.shape[0]:
                        yield Stop(got, False)  # an unterminated last line or record
                        return
                    break
                try:
                    chunk = next(blocks, None)
                except zlib.error:
                    # Every complete record before the break is in `got`: the parser
                    # only asks for more once it has used up what it has.
                    yield Stop(got, True)
                    return
                if chunk is None:
                    eof = True
                else:
                    buf = np.concatenate([buf[pos:], np.frombuffer(chunk, dtype=np.uint8)])
                    pos = 0
        if got:
            yield _join(parts)
        if got < batch_size:
            return


def _join(parts: list[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    ids = cast(pa.StringArray, pa.concat_arrays([p[0] for p in parts]))
    seq = np.concatenate([p[1] for p in parts])
    lens = np.concatenate([np.diff(p[2]) for p in parts])
    offsets = np.zeros(lens.shape[0] + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return ids, seq, offsets
