"""Every byte VectorPipe reads or writes goes through here: local paths and S3.

A URI is `s3://bucket/key`, `file:///path` or a plain path (an FSx for Lustre
mount is a path). This is the only module of the workloads that talks to S3;
everything else asks it to list inputs, hand over a local copy of an object,
or write an object atomically. S3 writes are atomic by nature (a PUT or a
completed multipart upload appears whole or not at all); local writes go to a
hidden temporary name in the same directory and are renamed into place.
Throttling and 5xx answers are retried by botocore's adaptive mode with a
bounded number of attempts, so a transient fault never turns into a hot loop.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The one list of read-file names: what an input folder is listed for, what the
# `sample` label drops, what the demo data writes as FASTA.
FASTQ_SUFFIXES = (".fastq", ".fq")
FASTA_SUFFIXES = (".fasta", ".fa", ".fna", ".fas")
READ_SUFFIXES = FASTQ_SUFFIXES + FASTA_SUFFIXES
GZ_SUFFIXES = tuple(s + ".gz" for s in READ_SUFFIXES)
MAX_S3_ATTEMPTS = 8
_FILE_MODE = 0o644


@dataclass(frozen=True)
class S3Config:
    """How to reach S3; picklable so Ray tasks and MPI ranks rebuild clients from it.

    Credentials are never stored here: boto3's default chain (environment,
    IRSA web identity, instance profile) finds them on each process.
    """

    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, endpoint_url: str | None = None, region: str | None = None) -> S3Config:
        return cls(
            endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or None,
            region=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        )


@dataclass(frozen=True)
class InputFile:
    uri: str
    size: int

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :]) if uri.startswith("file://") else Path(uri)


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def join(base: str, name: str) -> str:
    """Append a path segment to a URI or path without doubling slashes."""
    return base.rstrip("/") + "/" + name.lstrip("/")


def is_read_file(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(READ_SUFFIXES) or lower.endswith(GZ_SUFFIXES)


_clients = threading.local()


class Store:
    """Reads and writes URIs; one per process, cheap to construct."""

    def __init__(self, s3: S3Config | None = None) -> None:
        self.s3_config = s3 or S3Config.from_env()

    # -- S3 plumbing -------------------------------------------------------
    def _s3(self) -> Any:
        # boto3 clients are not fork/thread safe to share; keep one per thread.
        key = (self.s3_config.endpoint_url, self.s3_config.region)
        cache: dict[Any, Any] = getattr(_clients, "cache", {})
        _clients.cache = cache
        if key not in cache:
            import boto3
            from botocore.config import Config

            cache[key] = boto3.client(
                "s3",
                endpoint_url=self.s3_config.endpoint_url,
                region_name=self.s3_config.region,
                config=Config(retries={"max_attempts": MAX_S3_ATTEMPTS, "mode": "adaptive"}),
            )
        return cache[key]

    def lance_storage_options(self) -> dict[str, str]:
        """Options for Lance's own object store, mirroring our S3 settings."""
        opts: dict[str, str] = {}
        if self.s3_config.endpoint_url:
            opts["aws_endpoint"] = self.s3_config.endpoint_url
            if self.s3_config.endpoint_url.startswith("http://"):
                opts["allow_http"] = "true"
        if self.s3_config.region:
            opts["aws_region"] = self.s3_config.region
        for env, opt in (
            ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
            ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
            ("AWS_SESSION_TOKEN", "aws_session_token"),
        ):
            if os.environ.get(env):
                opts[opt] = os.environ[env]
        return opts

    # -- listing -----------------------------------------------------------
    def list_inputs(self, uri: str) -> list[InputFile]:
        """The read files a URI names: one file, a directory/prefix, or a glob in the last segment.

        Sorted by URI so the same input always gives the same order (and so
        the same shards).
        """
        files = self._list_s3(uri) if is_s3(uri) else self._list_local(uri)
        return sorted(files, key=lambda f: f.uri)

    def _list_local(self, uri: str) -> list[InputFile]:
        path = local_path(uri)
        if any(c in path.name for c in "*?["):
            candidates = sorted(path.parent.glob(path.name))
        elif path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if is_read_file(p.name))
        elif path.exists():
            candidates = [path]
        else:
            raise FileNotFoundError(f"input not found: {uri}")
        return [InputFile(str(p), p.stat().st_size) for p in candidates if p.is_file()]

    def _list_s3(self, uri: str) -> list[InputFile]:
        bucket, key = split_s3(uri)
        head, _, last = key.rpartition("/")
        pattern = None
        if any(c in last for c in "*?["):
            prefix, pattern = (head + "/" if head else ""), last
        else:
            prefix = key
        out: list[InputFile] = []
        paginator = self._s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                exact = obj["Key"] == key
                if pattern is not None and not fnmatch.fnmatch(name, pattern):
                    continue
                if pattern is None and not exact and not is_read_file(name):
                    continue
                if (
                    pattern is None
                    and not exact
                    and not obj["Key"].startswith(key.rstrip("/") + "/")
                ):
                    continue
                out.append(InputFile(f"s3://{bucket}/{obj['Key']}", int(obj["Size"])))
        if not out:
            raise FileNotFoundError(f"no input files under {uri}")
        return out

    def list_prefix(self, uri: str) -> list[str]:
        """Every object/file URI under a prefix or directory (for cleanup and tests)."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            key = key.rstrip("/") + "/" if key else ""
            paginator = self._s3().get_paginator("list_objects_v2")
            return [
                f"s3://{bucket}/{o['Key']}"
                for page in paginator.paginate(Bucket=bucket, Prefix=key)
                for o in page.get("Contents", [])
            ]
        path = local_path(uri)
        return sorted(str(p) for p in path.rglob("*") if p.is_file()) if path.is_dir() else []

    # -- reading -----------------------------------------------------------
    @contextlib.contextmanager
    def local_copy(self, uri: str, scratch: str | None = None) -> Iterator[str]:
        """A local file path holding the object's bytes for as long as the block runs."""
        if not is_s3(uri):
            yield str(local_path(uri))
            return
        bucket, key = split_s3(uri)
        suffix = "".join(Path(key).suffixes[-2:])
        fd, tmp = tempfile.mkstemp(prefix="vp-", suffix=suffix, dir=scratch)
        os.close(fd)
        try:
            self._s3().download_file(bucket, key, tmp)
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def read_bytes(self, uri: str) -> bytes:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            body: bytes = self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()
            return body
        return local_path(uri).read_bytes()

    def exists(self, uri: str) -> bool:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            from botocore.exceptions import ClientError

            try:
                self._s3().head_object(Bucket=bucket, Key=key)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True
        return local_path(uri).exists()

    # -- writing -----------------------------------------------------------
    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write an object so readers see all of it or nothing."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self._s3().put_object(Bucket=bucket, Key=key, Body=data)
            return
        path = local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            # mkstemp makes 0600 files; results are read by other users (Slurm jobs, readers).
            os.fchmod(fd, _FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_file(self, src: str, uri: str) -> None:
        """Publish a finished local file at `uri` atomically."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self._s3().upload_file(src, bucket, key)
            return
        path = local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def delete(self, uri: str) -> None:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self._s3().delete_object(Bucket=bucket, Key=key)
            return
        with contextlib.suppress(FileNotFoundError):
            local_path(uri).unlink()

    def delete_prefix(self, uri: str) -> None:
        if is_s3(uri):
            for obj in self.list_prefix(uri):
                self.delete(obj)
            return
        shutil.rmtree(local_path(uri), ignore_errors=True)

    def make_scratch_dir(self, uri: str) -> str:
        """A writable local directory: the output dir itself when it is a path."""
        if is_s3(uri):
            return tempfile.mkdtemp(prefix="vp-scratch-")
        path = local_path(uri)
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
