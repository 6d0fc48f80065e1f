"""Fuzzing the readers: any byte string either parses or raises InputFormatError.

Inputs are random bytes, and valid FASTQ/FASTA mutated (bytes flipped, cut,
inserted, duplicated, truncated) before or after gzip compression, so the
corrupt-deflate, bad-checksum and mangled-record paths of needletail are all
reached. Whatever parses must also be a well-formed batch stream.
"""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vectorpipe_workloads.etl.readers import (
    InputFormatError,
    count_records,
    detect_format,
    iter_batches,
)

ALLOWED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-.*")

records = st.lists(
    st.tuples(
        st.text("abcr0123 _/:", min_size=1, max_size=12).filter(lambda s: not s[0].isspace()),
        st.text("ACGTNacgtn", max_size=40),
    ),
    min_size=1,
    max_size=12,
)


def to_fastq(recs: list[tuple[str, str]]) -> bytes:
    return b"".join(f"@{h}\n{s}\n+\n{'F' * len(s)}\n".encode() for h, s in recs)


def to_fasta(recs: list[tuple[str, str]]) -> bytes:
    return b"".join(f">{h}\n{s}\n".encode() for h, s in recs)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "delete", "insert", "dup", "truncate"]))
        at = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and buf:
            buf[at] = draw(st.sampled_from(b"@+>\n\r \tACGTN\x00\xff"))
        elif op == "delete":
            del buf[at : at + draw(st.integers(1, 8))]
        elif op == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "dup":
            buf[at:at] = buf[at : at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del buf[at:]
    return bytes(buf)


@st.composite
def inputs(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(["random", "text", "mutate", "mutate-then-gzip", "gzip-then-mutate"])
    )
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "text":
        return draw(st.text("@+>\nACGTN I", max_size=200)).encode()
    recs = draw(records)
    valid = draw(st.sampled_from([to_fastq, to_fasta]))(recs)
    if kind == "mutate":
        return draw(mutated(valid))
    if kind == "mutate-then-gzip":
        return gzip.compress(draw(mutated(valid)))
    return draw(mutated(gzip.compress(valid)))


def check_batches(path: Path) -> tuple[int, InputFormatError | None]:
    """Parse everything, asserting batch invariants; return the read count and any error."""
    total = 0
    try:
        for batch in iter_batches(path, source="fuzz://input", batch_size=3):
            assert batch.first_record == total + 1
            assert batch.offsets[0] == 0 and batch.offsets[-1] == batch.seq.shape[0]
            assert np.all(np.diff(batch.offsets) >= 0) and len(batch.offsets) == len(batch) + 1
            assert set(batch.seq.tobytes()) <= ALLOWED
            total += len(batch)
    except InputFormatError as err:
        return total, err
    return total, None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "input"


@pytest.mark.faults
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=inputs())
def test_any_bytes_parse_or_raise_input_format_error(scratch: Path, data: bytes) -> None:
    scratch.write_bytes(data)
    total, err = check_batches(scratch)
    try:
        counted: int | None = count_records(scratch)
    except InputFormatError:
        counted = None
    if err is None:
        # A stream that parses completely has a structure count_records accepts too.
        assert counted == total
        assert detect_format(scratch) in ("fastq", "fasta")
        return
    assert err.source == "fuzz://input" and err.reason
    assert str(err) == f"fuzz://input: record {err.record}: {err.reason}"
    # The batch holding the bad record is not yielded, so it is among the next 3;
    # record 0 means the input held no record at all.
    if err.record == 0:
        assert total == 0
    else:
        assert total < err.record <= total + 3
    with contextlib.suppress(InputFormatError):
        detect_format(scratch)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=records, gz=st.booleans(), fmt=st.sampled_from(["fastq", "fasta"]))
def test_valid_inputs_round_trip(
    tmp_path_factory: pytest.TempPathFactory, recs: list[tuple[str, str]], gz: bool, fmt: str
) -> None:
    data = to_fastq(recs) if fmt == "fastq" else to_fasta(recs)
    path = tmp_path_factory.mktemp("valid") / "reads"
    path.write_bytes(gzip.compress(data) if gz else data)
    got = []
    for batch in iter_batches(path, batch_size=5):
        for i, rid in enumerate(batch.ids):
            got.append((rid, batch.seq[batch.offsets[i] : batch.offsets[i + 1]].tobytes().decode()))
    assert got == [(h.split()[0], s.upper()) for h, s in recs]
    assert count_records(path) == len(recs)
    assert detect_format(path) == fmt
