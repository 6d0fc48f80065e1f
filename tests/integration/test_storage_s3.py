"""The storage layer against a real S3 API over HTTP on loopback, and local paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.s3 import LocalS3
from vectorpipe_workloads.storage import S3Config, Store

pytestmark = pytest.mark.s3


@pytest.fixture
def store(s3: LocalS3) -> Store:
    return Store(S3Config(endpoint_url=s3.endpoint_url, region="us-east-1"))


def test_list_prefix_glob_and_single_file(s3: LocalS3, store: Store) -> None:
    bucket = s3.create_bucket("vp-list")
    for key in [
        "reads/b.fq.gz",
        "reads/a.fastq",
        "reads/notes.txt",
        "reads/sub/c.fa",
        "other/d.fq",
    ]:
        store.write_bytes(f"s3://{bucket}/{key}", b"x")
    names = [f.uri for f in store.list_inputs(f"s3://{bucket}/reads/")]
    assert names == [
        f"s3://{bucket}/reads/a.fastq",
        f"s3://{bucket}/reads/b.fq.gz",
        f"s3://{bucket}/reads/sub/c.fa",
    ]
    globbed = [f.name for f in store.list_inputs(f"s3://{bucket}/reads/*.gz")]
    assert globbed == ["b.fq.gz"]
    single = store.list_inputs(f"s3://{bucket}/other/d.fq")
    assert [(f.name, f.size) for f in single] == [("d.fq", 1)]
    with pytest.raises(FileNotFoundError, match="no input files"):
        store.list_inputs(f"s3://{bucket}/missing/")


def test_write_read_exists_delete(s3: LocalS3, store: Store, tmp_path: Path) -> None:
    bucket = s3.create_bucket("vp-rw")
    uri = f"s3://{bucket}/x/y.bin"
    assert not store.exists(uri)
    store.write_bytes(uri, b"hello")
    assert store.exists(uri) and store.read_bytes(uri) == b"hello"
    with store.local_copy(uri) as path:
        assert Path(path).read_bytes() == b"hello"
    assert not Path(path).exists()
    src = tmp_path / "f"
    src.write_bytes(b"file")
    store.put_file(str(src), f"s3://{bucket}/x/z.bin")
    assert sorted(store.list_prefix(f"s3://{bucket}/x")) == [uri, f"s3://{bucket}/x/z.bin"]
    store.delete_prefix(f"s3://{bucket}/x")
    assert store.list_prefix(f"s3://{bucket}/x") == []


def test_local_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    store = Store()
    target = tmp_path / "out" / "a.json"
    store.write_bytes(str(target), b"{}")
    store.write_bytes(f"file://{target}", b"[]")
    assert target.read_bytes() == b"[]"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]
    files = store.list_inputs(str(tmp_path / "out" / "*.json"))
    assert [f.name for f in files] == ["a.json"]
    with pytest.raises(FileNotFoundError):
        store.list_inputs(str(tmp_path / "nope"))
