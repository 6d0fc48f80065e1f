"""Faults 6, 7 and 8 on stage 1: S3 error bursts, a full disk, broken input files.

Stage 1 runs for real on the session's local Ray: in-process through
`run_etl`, or as `vectorpipe etl`/`vectorpipe run` subprocesses attached to
that Ray through RAY_ADDRESS, which is what the RayJob's entrypoint does.
Faults are real too: S3 requests go through `FaultyS3`, a proxy in front of the
loopback S3 API that answers bursts of them with 503 SlowDown and 500
InternalError; the output directory is a tmpfs mounted with a size far below
what stage 1 writes, then a shard's final name is taken by a directory so its
commit fails; input files are corrupted, truncated, emptied, or
their gzip stream is bit-flipped, and one broken file goes through the operator
and the RayJob harness (the real `vectorpipe etl` entrypoint) to a Failed
pipeline without a SlurmJob. Every test counts rows: after a fault the
run either commits every input read exactly once, or commits nothing.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.services.s3 import LocalS3
from tests.services.s3_faults import FaultyS3
from tests.support.controlplane import ControlPlane
from tests.support.operator import Cluster, condition, pipeline, start_operator
from tests.support.rayjob_harness import LocalRayHead, RayJobHarness
from vectorpipe_api.pipeline import VectorPipelineSpec
from vectorpipe_workloads.etl import run_etl
from vectorpipe_workloads.etl.readers import InputFormatError
from vectorpipe_workloads.manifest import read_manifest
from vectorpipe_workloads.shards import read_shard
from vectorpipe_workloads.storage import S3Config, Store

pytestmark = [pytest.mark.faults, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "examples" / "data"
SAMPLE_READS = 15000
VECTORPIPE = [sys.executable, "-m", "vectorpipe_workloads"]


def reads(n: int, prefix: str, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [
        (f"{prefix}{i}", "".join(rng.choice(list("ACGT"), size=int(rng.integers(20, 120)))))
        for i in range(n)
    ]


def fastq(recs: list[tuple[str, str]]) -> bytes:
    return "".join(f"@{r}\n{s}\n+\n{'I' * len(s)}\n" for r, s in recs).encode()


def fasta(recs: list[tuple[str, str]]) -> bytes:
    return "".join(f">{r}\n{s}\n" for r, s in recs).encode()


def spec(inp: str, out: str, **extra: Any) -> VectorPipelineSpec:
    raw: dict[str, Any] = {
        "input": {"uri": inp},
        "output": {"uri": out, "shards": extra.pop("shards", 4)},
        "embedding": {"method": "kmer", "k": 4},
        "ray": {"batchSize": 256},
        **extra,
    }
    return VectorPipelineSpec.model_validate(raw)


def committed_ids(store: Store, out: str) -> list[str]:
    m = read_manifest(store, out)
    ids = [i for s in m.shards for i in read_shard(store, out, s).column("read_id").to_pylist()]
    assert len(ids) == m.rows
    return ids


@pytest.fixture(scope="module")
def ray_address(ray_session: Any) -> str:
    """The session Ray's address, for `vectorpipe` subprocesses to attach to."""
    return str(ray_session.get_runtime_context().gcs_address)


def cli(args: list[str], ray_address: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_ADDRESS": ray_address}
    return subprocess.run(
        [*VECTORPIPE, *args], capture_output=True, text=True, timeout=600, env=env, check=False
    )


def pipeline_file(path: Path, inp: str, out: str, shards: int = 4) -> Path:
    doc = {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": "faults"},
        "spec": {
            "input": {"uri": inp},
            "output": {"uri": out, "shards": shards},
            "embedding": {"method": "kmer", "k": 4},
            "hpc": {"slurm": {"ntasksPerNode": 2}, "app": {"clusters": 3}},
        },
    }
    path.write_text(yaml.safe_dump(doc))
    return path


# -- fault 6: S3 5xx and throttling bursts ---------------------------------------------------
@pytest.mark.s3
def test_s3_error_bursts_are_retried_and_every_row_lands_once(
    ray_session: Any, s3: LocalS3, tmp_path: Path
) -> None:
    bucket = s3.create_bucket("vp-faulty")
    client = s3.client()
    a, b, c = reads(2500, "a", 1), reads(4000, "b", 2), reads(1500, "c", 3)
    files = {"a.fastq": fastq(a), "b.fq.gz": gzip.compress(fastq(b)), "c.fasta": fasta(c)}
    expected = [r for r, _ in a + b + c]  # the sorted file order
    for name, data in files.items():
        client.put_object(Bucket=bucket, Key=f"reads/{name}", Body=data)
    out = f"s3://{bucket}/runs/r1"
    with FaultyS3(s3.endpoint_url, period=8, burst=2) as faulty:
        m = run_etl(
            spec(f"s3://{bucket}/reads/", out, shards=3, s3={"endpointUrl": faulty.url}),
            pipeline="faults",
        )
    print(f"S3 faults injected: {dict(faulty.injected)} of {faulty.requests} requests")
    assert faulty.injected["GET"] > 0 and faulty.injected["PUT"] > 0, faulty.injected
    assert sum(faulty.injected.values()) >= 20
    assert m.rows == len(expected) == 8000
    store = Store(S3Config(endpoint_url=s3.endpoint_url, region="us-east-1"))
    ids = committed_ids(store, out)
    assert ids == expected  # nothing lost, nothing twice, in input order
    keys = sorted(k.rsplit("/", 1)[-1] for k in store.list_prefix(out))
    assert keys == ["_manifest.json", "part-00000.parquet", "part-00001.parquet",
                    "part-00002.parquet"], keys  # fmt: skip


# -- fault 7: a full disk, and a write error at a shard's commit --------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    # 2 MiB: far less than the ~10 MB stage 1 writes for the sample reads.
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the suite runs as root): {res.stderr}", pytrace=False)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_or_a_shard_write_error_commits_nothing_and_a_rerun_overwrites_cleanly(
    ray_address: str, small_disk: Path, tmp_path: Path
) -> None:
    out = small_disk / "run"
    pipe = pipeline_file(tmp_path / "p.yaml", str(DATA) + "/", str(out) + "/")

    full = cli(["etl", "--pipeline", str(pipe)], ray_address)
    assert full.returncode != 0, full.stdout
    assert "No space left on device" in full.stderr, full.stderr[-3000:]
    assert not (out / "_manifest.json").exists()

    # Room enough now, but shard 2 cannot be published: its name is taken by a
    # directory, so the rename that commits it fails (a write error at the commit).
    subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)
    squatter = out / "part-00002.parquet"
    squatter.mkdir(parents=True)
    (squatter / "keep").write_text("x")
    broken = cli(["etl", "--pipeline", str(pipe)], ray_address)
    assert broken.returncode != 0, broken.stdout
    assert "part-00002.parquet" in broken.stderr, broken.stderr[-3000:]
    assert not (out / "_manifest.json").exists()

    # Fixed: the rerun into the same output commits every read once, nothing else is left.
    (squatter / "keep").unlink()
    squatter.rmdir()
    ok = cli(["etl", "--pipeline", str(pipe)], ray_address)
    assert ok.returncode == 0, ok.stderr[-3000:]
    ids = committed_ids(Store(), str(out))
    assert len(ids) == len(set(ids)) == SAMPLE_READS
    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest.json", "part-00000.parquet", "part-00001.parquet",
        "part-00002.parquet", "part-00003.parquet",
    ]  # fmt: skip


# -- fault 8: broken input files -----------------------------------------------------------------
GOOD = fastq(reads(300, "g", 9))


def _flip(blob: bytes) -> bytes:
    b = bytearray(blob)
    for i in range(len(b) // 2, len(b) // 2 + 16):
        b[i] ^= 0xA5
    return bytes(b)


BROKEN: list[tuple[str, str, bytes, int | None, str]] = [
    ("corrupt-fastq", "x.fastq", GOOD + b"@bad\nACGT\n+\nII\n", 301, "quality length"),
    ("truncated-fastq", "x.fastq", GOOD + b"@cut\nACGT\n", 301, "truncated record"),
    ("empty-fastq", "x.fastq", b"", 0, "empty input"),
    ("corrupt-fasta", "x.fasta", fasta(reads(50, "f", 4)) + b">bad\nAC7GT\n", 51, "invalid character"),
    ("truncated-gzip", "x.fq.gz", gzip.compress(fastq(reads(3000, "z", 5)))[:9000], None,
     "compressed stream"),
    ("corrupt-gzip", "x.fq.gz", _flip(gzip.compress(fastq(reads(3000, "z", 6)))), None, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "name", "data", "record", "reason"), BROKEN, ids=[b[0] for b in BROKEN]
)
def test_broken_input_fails_naming_file_and_record_and_commits_nothing(
    ray_session: Any, tmp_path: Path, case: str, name: str, data: bytes, record: int | None,
    reason: str,
) -> None:  # fmt: skip
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a-good.fastq").write_bytes(GOOD)
    (inp / name).write_bytes(data)
    out = tmp_path / "out"
    with pytest.raises(InputFormatError) as err:
        run_etl(spec(str(inp) + "/", str(out)), pipeline="faults")
    e = err.value
    assert e.source == str(inp / name), e
    if record is not None:
        assert e.record == record, e
    assert e.record >= 0 and f"{inp / name}: record {e.record}: " in str(e)
    assert reason in e.reason, e
    assert not (out / "_manifest.json").exists()
    assert not list(out.glob("part-*")) and not list(out.glob("_staging/*/*"))


def test_vectorpipe_run_on_corrupt_gzip_exits_3_before_stage_two(
    ray_address: str, tmp_path: Path
) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "a.fastq").write_bytes(GOOD)
    (inp / "b.fq.gz").write_bytes(_flip(gzip.compress(fastq(reads(3000, "z", 6)))))
    out = tmp_path / "out"
    res = cli(
        ["run", str(pipeline_file(tmp_path / "p.yaml", str(inp) + "/", str(out) + "/"))],
        ray_address,
    )
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"{inp / 'b.fq.gz'}: record " in res.stderr, res.stderr
    # Nothing downstream: no commit point, no shards, no clustering output.
    for name in ("_manifest.json", "metrics.json", "centroids.parquet", "_SUCCESS"):
        assert not (out / name).exists(), name
    assert not list(out.glob("part-*")) and not (out / "assignments").exists()


@pytest.mark.k8s
def test_corrupt_input_through_the_operator_fails_the_pipeline_and_starts_no_stage_two(
    ray_address: str,
    crds: ControlPlane,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inp = tmp_path / "reads"
    inp.mkdir()
    (inp / "a.fastq").write_bytes(GOOD)
    (inp / "b.fastq").write_bytes(GOOD + b"@bad\nACGT\n+\nII\n")
    out = tmp_path / "out"
    cluster = Cluster(crds, namespace)
    # The harness turns Ray's token auth off for its own head; the session Ray uses it.
    monkeypatch.setattr(LocalRayHead, "env", {})
    op = start_operator(crds, namespace, tmp_path / "operator.log")
    try:
        with RayJobHarness(
            crds.kubeconfig, namespace, workdir=tmp_path / "harness", ray_address=ray_address
        ) as harness:
            cluster.create(pipeline("bad", out, input={"uri": str(inp) + "/"}))
            res = harness.wait_for("bad-etl", timeout=600)
        assert res.returncode == 3, res.stdout + res.stderr
        p = cluster.wait_phase("bad", "Failed", timeout=120)
        ready = condition(p, "Ready")
        assert ready["reason"] == "RayJobFailed", ready
        assert f"{inp / 'b.fastq'}: record 301" in ready["message"], ready
        assert condition(p, "ClusteringComplete")["reason"] == "NotStarted"
        assert cluster.get("slurmjob", "bad-kmeans") is None
        assert not (out / "_manifest.json").exists() and not list(out.glob("part-*"))
    finally:
        op.stop()
        print(f"----- operator log (tail) -----\n{op.tail(60)}")
