"""Stage 1 input: stream FASTQ/FASTA reads (plain or gzip) into columnar batches.

Reads become `ReadBatch` objects (read names as an Arrow string array, one
uppercased ASCII byte buffer of all sequences, int64 offsets) that the numba
embedders consume without touching Python strings. Well-formed plain and gzip
files take `readers_fast` (block reads and a numba record scanner, no Python
object per read); other compressions, and everything from the first record
the fast path does not vouch for, go through needletail, so needletail defines
what is accepted. This module turns every way an input can be broken (truncated
record, bad header, sequence/quality length mismatch, corrupt or truncated
compressed stream, empty file, bytes that are not sequence letters) into one
`InputFormatError` that names the file and the 1-based record number. Policy
decisions: a read's id is its name (the header up to the first whitespace);
records with an empty sequence are accepted (cutadapt and friends emit them
legitimately) and the embedders give them an all-zero row; sequence bytes must
be ASCII letters or one of ``- . *`` (anything else, such as spaces, digits or
non-ASCII bytes, is rejected as a corrupt record); lowercase is uppercased.
Missing or unreadable paths, and real read errors, raise `OSError` instead.
needletail quirks kept as they are: a FASTA header with no sequence line is an
empty read mid-file but a truncated record at the very end, and a 1-byte file
counts as empty when plain but is parsed when compressed.
"""

from __future__ import annotations

import collections
import functools
import itertools
import os
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import needletail
import numpy as np
import pyarrow as pa
from numba import njit
from numpy.typing import NDArray

from vectorpipe_workloads.etl.readers_fast import Stop, fast_batches

__all__ = [
    "InputFormatError",
    "ReadBatch",
    "count_records",
    "detect_format",
    "iter_batches",
]

_F = TypeVar("_F", bound=Callable[..., Any])

StrPath = str | os.PathLike[str]


def _jit(fn: _F) -> _F:
    # numba ships no type information; keep the Python signature for mypy.
    return cast(_F, njit(cache=True, nogil=True)(fn))


@dataclass(frozen=True, eq=False)
class ReadBatch:
    """Consecutive reads of one file; read ``i`` is ``seq[offsets[i]:offsets[i + 1]]``.

    ``seq`` may be a read-only view of the decoded bytes (it is never copied
    when the input is already uppercase). ``first_record`` is the 1-based
    record number of ``ids[0]`` within ``source``.
    """

    source: str
    first_record: int
    id_array: pa.StringArray
    seq: NDArray[np.uint8]
    offsets: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.id_array)

    @functools.cached_property
    def ids(self) -> list[str]:
        """The read names as Python strings (built on first use; `id_array` is cheaper)."""
        return cast(list[str], self.id_array.to_pylist())

    @property
    def lengths(self) -> NDArray[np.int64]:
        return np.diff(self.offsets)


class InputFormatError(ValueError):
    """A malformed input file, located by display name and 1-based record number.

    ``record`` is the number of the offending record, i.e. one more than the
    number of records read successfully before it; it is 0 when the input
    holds no record at all (an empty file, or an empty compressed stream).
    """

    def __init__(self, source: str, record: int, reason: str) -> None:
        super().__init__(f"{source}: record {record}: {reason}")
        self.source = source
        self.record = record
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray ships exceptions between processes by pickling them.
        return (type(self), (self.source, self.record, self.reason))


# needletail's messages (0.7.x) end in "(record 'ID' at line N)." or "(line N)."
_WHERE = re.compile(r"\s*\((?:record '(?P<id>.*)' at )?line \d+\)\.?\s*$", re.DOTALL)
_LEN_MISMATCH = re.compile(r"Sequence length is (\d+) but quality length is (\d+)")
_OS_ERROR = re.compile(r"\(os error (\d+)\)$")
# Reads are decoded in sub-chunks this small so the per-read str objects are freed
# and their memory reused while still in cache (see iter_batches).
_CHUNK = 4096
_COUNT_BATCH = 1 << 16


def _is_compressed(path: StrPath) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return False
    # gzip, bzip2, xz, zstd: the containers needletail can decompress.
    return head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd"))


def _translate(path: StrPath, source: str, ok: int, exc: Exception) -> Exception:
    """Map a needletail error raised after `ok` good records to our exceptions."""
    raw = str(exc)
    where = _WHERE.search(raw)
    text = raw[: where.start()] if where else raw
    read_id = where.group("id") if where else None
    record = ok + 1
    if os_error := _OS_ERROR.search(text):
        # A real read failure (EIO, ESTALE on a network mount...) is not the
        # file's fault: keep it an OSError so callers may retry.
        errno = int(os_error.group(1))
        return OSError(errno, f"{source}: record {record}: {text}")
    if text.startswith("Failed to read the first two bytes"):
        record, reason = 0, "empty input: no records"
    elif text.startswith("Unexpected end of input"):
        reason = "truncated record: unexpected end of input"
    elif m := _LEN_MISMATCH.search(text):
        reason = f"sequence length {m.group(1)} != quality length {m.group(2)}"
    elif text.startswith("Expected '@' or '>' at the start"):
        reason = "not FASTA or FASTQ: e" + text[1:]
    elif text.startswith("Expected '@' but found"):
        reason = "bad FASTQ header: e" + text[1:] + "'"
    elif text.startswith("Expected '+' separator"):
        reason = "bad FASTQ separator line: e" + text[1:] + "'"
    elif text.startswith("I/O error: ") and _is_compressed(path):
        reason = "corrupt or truncated compressed stream: " + text.removeprefix("I/O error: ")
    else:
        reason = text
    if read_id is not None:
        reason += f" (read '{read_id}')"
    return InputFormatError(source, record, reason)


@_jit
def _scan(seq: NDArray[np.uint8]) -> tuple[bool, bool]:
    # Branch-free so LLVM vectorises it (~0.2 ns/byte): (any invalid byte, any lowercase).
    bad: np.bool_ = np.bool_(False)
    lower: np.bool_ = np.bool_(False)
    for i in range(seq.shape[0]):
        c = np.uint8(seq[i])
        is_lower = np.uint8(c - np.uint8(97)) < np.uint8(26)
        is_upper = np.uint8(c - np.uint8(65)) < np.uint8(26)
        is_gap = (c == np.uint8(45)) | (c == np.uint8(46)) | (c == np.uint8(42))
        lower |= is_lower
        bad |= ~(is_lower | is_upper | is_gap)
    return bool(bad), bool(lower)


@_jit
def _first_invalid(seq: NDArray[np.uint8]) -> int:
    for i in range(seq.shape[0]):
        c = seq[i]
        if not ((65 <= c <= 90) or (97 <= c <= 122) or c == 45 or c == 46 or c == 42):
            return i
    return -1


@_jit
def _upper(seq: NDArray[np.uint8]) -> NDArray[np.uint8]:
    out = np.empty_like(seq)
    for i in range(seq.shape[0]):
        c = seq[i]
        out[i] = c - np.uint8(32) if np.uint8(c - np.uint8(97)) < np.uint8(26) else c
    return out


def _encode(source: str, first: int, ids: list[str], seqs: list[str]) -> bytes:
    """Concatenate a chunk's sequences as ASCII; ``seqs[i]`` is record ``first + i``,
    named ``ids[len(ids) - len(seqs) + i]``."""
    try:
        return "".join(seqs).encode("ascii")
    except UnicodeEncodeError as exc:
        # len() counts code points, which is what exc.start indexes.
        ends = np.cumsum(np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs)))
        i = int(np.searchsorted(ends, exc.start, side="right"))
        char = exc.object[exc.start]
        # needletail decodes bytes that are not UTF-8 to U+FFFD.
        what = "a non-UTF-8 byte" if char == "\ufffd" else f"non-ASCII character {char!r}"
        reason = f"{what} in sequence (read '{ids[len(ids) - len(seqs) + i]}')"
        raise InputFormatError(source, first + i, reason) from None


def _finish(
    source: str, first: int, ids: list[str], raw: bytes, lengths: NDArray[np.int64]
) -> ReadBatch:
    offsets = np.empty(len(ids) + 1, dtype=np.int64)
    offsets[0] = 0
    np.cumsum(lengths, out=offsets[1:])
    seq = np.frombuffer(raw, dtype=np.uint8)
    bad, lower = _scan(seq)
    if bad:
        pos = _first_invalid(seq)
        i = int(np.searchsorted(offsets, pos, side="right")) - 1
        reason = (
            f"invalid character {chr(seq[pos])!r} at sequence position {pos - offsets[i] + 1}"
            f" (read '{ids[i]}')"
        )
        raise InputFormatError(source, first + i, reason)
    if lower:
        seq = _upper(seq)
    batch = ReadBatch(source, first, pa.array(ids, pa.string()), seq, offsets)
    # The strings exist already: seed the cached property rather than rebuild them.
    batch.__dict__["ids"] = ids
    return batch


def _open(path: StrPath, source: str) -> needletail.FastxReader:
    # Fail on a missing/unreadable path with the real OSError; needletail would
    # report a directory as an empty file and wrap a missing file in its error.
    with open(path, "rb"):
        pass
    try:
        # needletail sniffs the first bytes (compression, '@' or '>') right here.
        return needletail.parse_fastx_file(os.fspath(path))
    except needletail.NeedletailError as exc:
        raise _translate(path, source, 0, exc) from exc


def _fast_kind(path: StrPath) -> bool | None:
    """True for gzip, False for uncompressed, None when only needletail may read it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return None
    if head.startswith(b"\x1f\x8b"):
        return True
    return None if _is_compressed(path) else False


def iter_batches(
    path: StrPath, source: str | None = None, batch_size: int = 65536
) -> Iterator[ReadBatch]:
    """Stream the reads of a FASTQ/FASTA file (plain or compressed) in batches.

    Holds one batch in memory at a time. `source` is the name errors use (say
    the s3:// URI of a downloaded temp file); it defaults to `path`. Raises
    `InputFormatError` at the first bad record, without yielding the reads of
    the batch that contains it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    name = os.fspath(path) if source is None else source
    done = yield from _fast(path, name, batch_size)
    if done is not None:
        yield from _slow_batches(path, name, batch_size, done)


def _fast(path: StrPath, name: str, batch_size: int) -> Generator[ReadBatch, None, int | None]:
    """The fast path's batches; returns None if it read the whole file, else how many
    records it yielded before needletail has to take over."""
    gz = _fast_kind(path)
    if gz is None:
        return 0
    done = 0
    stop: Stop | None = None
    try:
        with open(path, "rb") as fh:
            for got in fast_batches(fh, gz, batch_size):
                if isinstance(got, Stop):
                    stop = got
                    break
                yield ReadBatch(name, done + 1, *got)
                done += len(got[0])
    except OSError:
        return done  # needletail meets it again and reports it with its record number
    if stop is None:
        return None
    if stop.broken:
        _raise_broken(path, name, done + stop.pending)
    return done


def _raise_broken(path: StrPath, name: str, ok: int) -> None:
    """Raise needletail's error for a broken compressed stream, after `ok` good records.

    needletail fails as soon as it buffers the broken part, a varying number of
    records before it; the fast path counted every complete record before it, so
    iter_batches and count_records agree on the number whatever the batch size.
    """
    try:
        _count(path, name, 0)
    except InputFormatError as exc:
        raise InputFormatError(name, ok + 1 if exc.record else 0, exc.reason) from exc


def _skip(reader: needletail.FastxReader, path: StrPath, name: str, skip: int) -> None:
    try:
        collections.deque(itertools.islice(reader, skip), maxlen=0)
    except needletail.NeedletailError as exc:  # pragma: no cover - the fast path read them
        raise _translate(path, name, skip, exc) from exc


def _slow_batches(path: StrPath, name: str, batch_size: int, skip: int) -> Iterator[ReadBatch]:
    """needletail's batches, starting after the first `skip` records."""
    reader = _open(path, name)
    _skip(reader, path, name, skip)
    islice = itertools.islice
    first = skip + 1
    while True:
        ids: list[str] = []
        add_id = ids.append
        parts: list[bytes] = []
        lengths: list[NDArray[np.int64]] = []
        # Decode in chunks of _CHUNK reads: each chunk's str objects die before
        # the next chunk is read, so the allocator hands back the same, still
        # cached memory instead of faulting in fresh pages for a whole batch.
        while len(ids) < batch_size:
            want = min(_CHUNK, batch_size - len(ids))
            seqs: list[str] = []
            add_seq = seqs.append
            try:
                # The hot loop: two attribute reads and two appends per read.
                for rec in islice(reader, want):
                    add_id(rec.name)
                    add_seq(rec.seq)
            except needletail.NeedletailError as exc:
                raise _translate(path, name, first - 1 + len(ids), exc) from exc
            if seqs:
                chunk_first = first + len(ids) - len(seqs)
                parts.append(_encode(name, chunk_first, ids, seqs))
                lengths.append(np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs)))
            if len(seqs) < want:
                break
        if not ids:
            return
        raw = parts[0] if len(parts) == 1 else b"".join(parts)
        yield _finish(name, first, ids, raw, np.concatenate(lengths))
        first += len(ids)
        if len(ids) < batch_size:
            return


def count_records(path: StrPath, source: str | None = None) -> int:
    """Count a file's records, checking its structure but not the sequence letters."""
    name = os.fspath(path) if source is None else source
    batches = _fast(path, name, _COUNT_BATCH)
    total = 0
    while True:
        try:
            total += len(next(batches))
        except StopIteration as end:
            done: int | None = end.value
            break
    return total if done is None else _count(path, name, done)


def _count(path: StrPath, name: str, skip: int) -> int:
    reader = _open(path, name)
    _skip(reader, path, name, skip)
    counter = itertools.count(skip)
    try:
        # zip pulls from `reader` before `counter`, so `counter` only advances
        # for records that parsed, and no Python bytecode runs per record.
        collections.deque(zip(reader, counter, strict=False), maxlen=0)
    except needletail.NeedletailError as exc:
        raise _translate(path, name, next(counter), exc) from exc
    return next(counter)


def detect_format(path: StrPath, source: str | None = None) -> Literal["fastq", "fasta"]:
    """Say whether a file holds FASTQ or FASTA, judging by its first record."""
    name = os.fspath(path) if source is None else source
    reader = _open(path, name)
    try:
        first = next(reader)
    except needletail.NeedletailError as exc:
        raise _translate(path, name, 0, exc) from exc
    except StopIteration:  # pragma: no cover - needletail raises on empty input
        raise InputFormatError(name, 0, "empty input: no records") from None
    return "fastq" if first.is_fastq() else "fasta"
