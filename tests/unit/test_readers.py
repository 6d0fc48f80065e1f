"""FASTQ/FASTA readers: batches, record numbering and every way an input can be broken."""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from vectorpipe_workloads.etl import readers
from vectorpipe_workloads.etl.readers import (
    InputFormatError,
    ReadBatch,
    count_records,
    detect_format,
    iter_batches,
)

Record = tuple[str, str]


def fastq(records: Sequence[Record]) -> bytes:
    return b"".join(f"@{h}\n{s}\n+\n{'I' * len(s.encode())}\n".encode() for h, s in records)


def fasta(records: Sequence[Record], width: int = 5) -> bytes:
    out = []
    for h, s in records:
        lines = [s[i : i + width] for i in range(0, len(s), width)] or [""]
        out.append(f">{h}\n" + "\n".join(lines) + "\n")
    return "".join(out).encode()


def write(tmp_path: Path, name: str, data: bytes, gz: bool = False) -> Path:
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def reads(batches: Sequence[ReadBatch]) -> list[Record]:
    out = []
    for b in batches:
        for i, rid in enumerate(b.ids):
            out.append((rid, bytes(b.seq[b.offsets[i] : b.offsets[i + 1]]).decode()))
    return out


def drain(path: Path, batch_size: int) -> tuple[list[ReadBatch], InputFormatError]:
    """The batches yielded before the error, and the error (which must happen)."""
    seen: list[ReadBatch] = []
    try:
        seen.extend(iter_batches(path, batch_size=batch_size))
    except InputFormatError as err:
        return seen, err
    raise AssertionError(f"{path} parsed without error")


def first_error(path: Path, **kw: object) -> InputFormatError:
    with pytest.raises(InputFormatError) as info:
        for _ in iter_batches(path, **kw):  # type: ignore[arg-type]
            pass
    return info.value


RECORDS: list[Record] = [
    ("r1 sample=a", "ACGTACGT"),
    ("r2", "acgtnNNa"),
    ("r3\tdesc", "A"),
    ("r4", "GATTACAGATTACA"),
    ("r5", ""),
    ("r6", "TTTT"),
    ("r7", "CCCCCCCCCCCCCCCCCCCCC"),
]
EXPECTED = [(h.split()[0], s.upper()) for h, s in RECORDS]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("fmt", ["fastq", "fasta"])
@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_reads_round_trip(tmp_path: Path, gz: bool, fmt: str, batch_size: int) -> None:
    data = fastq(RECORDS) if fmt == "fastq" else fasta(RECORDS)
    path = write(tmp_path, f"reads.{fmt}", data, gz)
    batches = list(iter_batches(path, batch_size=batch_size))
    assert reads(batches) == EXPECTED
    assert [len(b) for b in batches][:-1] == [batch_size] * (len(batches) - 1)
    assert [b.first_record for b in batches] == list(range(1, len(RECORDS) + 1, batch_size))
    for b in batches:
        assert b.seq.dtype == np.uint8 and b.offsets.dtype == np.int64
        assert b.offsets[0] == 0 and b.offsets[-1] == b.seq.shape[0]
        assert len(b.offsets) == len(b) + 1
        assert b.source == str(path)
        np.testing.assert_array_equal(b.lengths, np.diff(b.offsets))
    assert count_records(path) == len(RECORDS)
    assert detect_format(path) == fmt


def test_batches_span_internal_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches are assembled from several decode chunks; shrink the chunk to cover that.
    monkeypatch.setattr(readers, "_CHUNK", 2)
    many = [(f"r{i}", "ACGT"[i % 4] * (i % 9)) for i in range(1, 40)]
    path = write(tmp_path, "many.fq", fastq(many))
    batches = list(iter_batches(path, batch_size=7))
    assert reads(batches) == many
    assert [b.first_record for b in batches] == list(range(1, 40, 7))
    bad = [*many[:22], ("bad", "AC GT"), *many[22:]]
    err = first_error(write(tmp_path, "bad.fq", fastq(bad)), batch_size=7)
    assert err.record == 23 and "(read 'bad')" in err.reason
    bad = [*many[:19], ("accent", "ACéT"), *many[19:]]
    err = first_error(write(tmp_path, "bad2.fq", fastq(bad)), batch_size=7)
    assert err.record == 20 and "non-ASCII character 'é' in sequence (read 'accent')" in err.reason


def test_single_final_batch_is_not_followed_by_an_empty_one(tmp_path: Path) -> None:
    path = write(tmp_path, "r.fq", fastq(RECORDS[:4]))
    assert [len(b) for b in iter_batches(path, batch_size=4)] == [4]
    assert [len(b) for b in iter_batches(path, batch_size=2)] == [2, 2]


def test_uppercase_input_is_not_copied(tmp_path: Path) -> None:
    path = write(tmp_path, "r.fq", fastq([("a", "ACGT"), ("b", "NNN")]))
    (batch,) = iter_batches(path)
    assert bytes(batch.seq) == b"ACGTNNN"


def test_ambiguity_codes_and_gaps_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "r.fa", fasta([("a", "ACRYKM-.*nx")]))
    (batch,) = iter_batches(path)
    assert bytes(batch.seq) == b"ACRYKM-.*NX"


def test_source_names_the_file_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "tmp123", fastq([("r1", "ACGT"), ("r2", "AC GT")]))
    err = first_error(path, source="s3://bucket/reads.fq.gz")
    assert err.source == "s3://bucket/reads.fq.gz"
    assert str(err).startswith("s3://bucket/reads.fq.gz: record 2: ")
    err = first_error(path)
    assert err.source == str(path) and str(err).startswith(f"{path}: record 2: ")


def test_error_message_format_and_pickling() -> None:
    err = InputFormatError("reads.fq.gz", 17, "sequence length 150 != quality length 149")
    assert str(err) == "reads.fq.gz: record 17: sequence length 150 != quality length 149"
    assert isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))
    assert (back.source, back.record, back.reason, str(back)) == (
        err.source,
        err.record,
        err.reason,
        str(err),
    )


GOOD = fastq([("r1", "ACGT"), ("r2", "GGCC"), ("r3", "TTAA")])


@pytest.mark.faults
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("data", "record", "reason"),
    [
        pytest.param(GOOD + b"@r4\nACGT\n+\n", 4, "", id="truncated-before-quality"),
        pytest.param(GOOD + b"@r4\nACGT\n", 4, "truncated record", id="truncated-after-seq"),
        pytest.param(GOOD + b"@r4\n", 4, "truncated record", id="truncated-after-header"),
        pytest.param(GOOD + b"@r4", 4, "truncated record", id="truncated-in-header"),
        pytest.param(GOOD + b"Xr4\nACGT\n+\nIIII\n", 4, "bad FASTQ header", id="bad-header"),
        pytest.param(
            GOOD + b"@r4\nACGT\n+\nII\n",
            4,
            "sequence length 4 != quality length 2",
            id="seq-qual-mismatch",
        ),
        pytest.param(
            GOOD + b"@r4\nACGT\nIIII\n", 4, "bad FASTQ separator line", id="bad-separator"
        ),
        pytest.param(b"", 0, "empty input", id="empty"),
        pytest.param(b"hello world\n", 1, "not FASTA or FASTQ", id="not-fastx"),
        pytest.param(GOOD + b"@r4\nAC7T\n+\nIIII\n", 4, "invalid character '7'", id="digit"),
        pytest.param(GOOD + b"@r4\nAC T\n+\nIIII\n", 4, "sequence position 3", id="space"),
        pytest.param(GOOD + b"@r4\nAC\xffT\n+\nIIII\n", 4, "non-UTF-8 byte", id="non-utf8"),
        pytest.param(
            GOOD + "@r4\nACéT\n+\nIIIII\n".encode(), 4, "non-ASCII character", id="non-ascii"
        ),
        pytest.param(b">r1\nACGT\n>r2\nAC\n@r3\nAC\n", 2, "invalid character '@'", id="fa-fq"),
    ],
)
def test_broken_inputs(tmp_path: Path, gz: bool, data: bytes, record: int, reason: str) -> None:
    path = write(tmp_path, "broken.fq", data, gz)
    err = first_error(path, batch_size=2)
    assert err.record == record, err
    assert reason in err.reason, err
    assert err.source == str(path)
    assert str(err) == f"{path}: record {record}: {err.reason}"


@pytest.mark.parametrize("gz", [False, True])
def test_structural_errors_match_between_count_and_iter(tmp_path: Path, gz: bool) -> None:
    path = write(tmp_path, "r.fq", GOOD + b"@r4\nACGT\n+\nII\n" + GOOD, gz)
    with pytest.raises(InputFormatError) as info:
        count_records(path, source="x.fq")
    assert info.value.record == 4 and str(info.value).startswith("x.fq: record 4: ")
    assert first_error(path).record == 4


@pytest.mark.faults
@pytest.mark.parametrize("func", [count_records, detect_format])
def test_empty_file_for_every_entry_point(tmp_path: Path, func: object) -> None:
    path = write(tmp_path, "empty.fq", b"")
    with pytest.raises(InputFormatError) as info:
        func(path)  # type: ignore[operator]
    assert info.value.record == 0 and "empty input" in info.value.reason


@pytest.mark.parametrize("gz", [False, True])
def test_one_byte_input(tmp_path: Path, gz: bool) -> None:
    # needletail calls a 1-byte plain file empty but parses a 1-byte gzip stream.
    err = first_error(write(tmp_path, "nl.fq", b"\n", gz))
    assert (err.record, "empty input" in err.reason) in ((0, True), (1, False))


def test_detect_format_rejects_junk(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="record 1: not FASTA or FASTQ"):
        detect_format(write(tmp_path, "junk.txt", b"#!/bin/sh\n", gz=True))


def big_fastq(n: int) -> bytes:
    rng = np.random.default_rng(7)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    return fastq([(f"r{i}", bytes(bases[rng.integers(0, 4, 50)]).decode()) for i in range(n)])


@pytest.mark.faults
def test_truncated_gzip(tmp_path: Path) -> None:
    blob = gzip.compress(big_fastq(4000))
    path = write(tmp_path, "cut.fq.gz", blob[: len(blob) // 2])
    seen, err = drain(path, batch_size=1)
    good = len(seen)
    assert 0 < good < 4000
    assert err.record == good + 1
    assert "corrupt or truncated compressed stream" in err.reason
    with pytest.raises(InputFormatError) as again:
        count_records(path)
    assert again.value.record == err.record


@pytest.mark.faults
@pytest.mark.parametrize("where", [0.3, 0.5, 0.8])
def test_bit_flipped_gzip(tmp_path: Path, where: float) -> None:
    blob = bytearray(gzip.compress(big_fastq(4000)))
    mid = int(len(blob) * where)
    for i in range(mid, mid + 16):
        blob[i] ^= 0xA5
    path = write(tmp_path, "flip.fq.gz", bytes(blob))
    seen, err = drain(path, batch_size=1)
    assert err.record == len(seen) + 1
    assert str(err).startswith(f"{path}: record {len(seen) + 1}: ")


@pytest.mark.faults
def test_gzip_checksum_mismatch(tmp_path: Path) -> None:
    blob = bytearray(gzip.compress(GOOD))
    blob[-6] ^= 0xFF  # inside the CRC32 trailer: the data decompresses fine
    path = write(tmp_path, "crc.fq.gz", bytes(blob))
    err = first_error(path)
    # The trailer is checked when the decompressor reaches it, which for a tiny
    # file is before needletail hands out the first record.
    assert 1 <= err.record <= 4
    assert "compressed stream" in err.reason and "checksum" in err.reason


def test_gzip_header_only_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "hdr.fq.gz", gzip.compress(GOOD)[:10])
    assert first_error(path).record in (0, 1)


def test_error_in_a_later_batch_counts_from_the_file_start(tmp_path: Path) -> None:
    data = big_fastq(25) + b"@bad\nACGT\n+\nIII\n" + big_fastq(3)
    seen, err = drain(write(tmp_path, "r.fq", data), batch_size=10)
    assert [b.first_record for b in seen] == [1, 11]
    assert err.record == 26 and "(read 'bad')" in err.reason


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    path = tmp_path / "multi.fq.gz"
    path.write_bytes(gzip.compress(fastq(RECORDS[:3])) + gzip.compress(fastq(RECORDS[3:])))
    assert reads(list(iter_batches(path, batch_size=2))) == EXPECTED


def test_fasta_empty_records_and_multiline(tmp_path: Path) -> None:
    path = write(tmp_path, "r.fa", b">a\nAC\nGT\n>b\n>c desc\nNN\nnn\n")
    assert reads(list(iter_batches(path))) == [("a", "ACGT"), ("b", ""), ("c", "NNNN")]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path, "r.fq", b"@a\r\nACGT\r\n+\r\nIIII\r\n@b\r\nGG\r\n+\r\nII\r\n")
    assert reads(list(iter_batches(path))) == [("a", "ACGT"), ("b", "GG")]


def test_missing_paths_raise_os_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(iter_batches(tmp_path / "nope.fq"))
    with pytest.raises(FileNotFoundError):
        count_records(tmp_path / "nope.fq")
    with pytest.raises(IsADirectoryError):
        detect_format(tmp_path)


def test_real_io_errors_stay_os_errors() -> None:
    exc = Exception("I/O error: Input/output error (os error 5)")
    mapped = readers._translate("x.fq", "s3://b/x.fq", 41, exc)
    assert type(mapped) is OSError and mapped.errno == 5
    assert "s3://b/x.fq: record 42" in str(mapped)


def test_batch_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        list(iter_batches(write(tmp_path, "r.fq", GOOD), batch_size=0))


def test_iter_batches_is_lazy(tmp_path: Path) -> None:
    # A generator: nothing is opened until the first batch is asked for.
    batches = iter_batches(tmp_path / "does-not-exist-yet.fq")
    write(tmp_path, "does-not-exist-yet.fq", GOOD)
    assert len(next(batches)) == 3
