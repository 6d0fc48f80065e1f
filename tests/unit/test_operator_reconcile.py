"""The reconcile steps against an in-memory API: ordering, idempotency and error mapping.

The real API server is exercised in tests/k8s/test_operator.py; here a small
fake stands in for `k8s.Kube` so every branch (transient, permanent, last
attempt, conflict, adoption) is cheap to reach.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kopf
import pytest

from vectorpipe_operator import reconcile as rec
from vectorpipe_operator.errors import InvalidStateError, TransientError
from vectorpipe_operator.manifests import read_committed_manifest
from vectorpipe_operator.status import condition
from vectorpipe_workloads.manifest import Manifest, ShardInfo, write_manifest
from vectorpipe_workloads.spec import VectorPipelineSpec, embedding_dim
from vectorpipe_workloads.storage import Store

NS, NAME, UID = "ns", "r42", "uid-r42"


class FakeKube:
    """Just enough of `k8s.Kube`: objects by (kind, name), scripted failures."""

    def __init__(self, pipeline: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.status_writes = 0
        self.fail_get: dict[str, Exception] = {}
        self.fail_status: Exception | None = None

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.pipeline) if self.pipeline else None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind in self.fail_get:
            raise self.fail_get[kind]
        obj = self.objects.get((kind, name))
        return copy.deepcopy(obj) if obj else None

    def ensure(self, obj: dict[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in self.objects:
            owners = [r["uid"] for r in self.objects[key]["metadata"].get("ownerReferences", [])]
            if owner_uid not in owners:
                raise InvalidStateError("ChildConflict", f"{key} is not ours")
            return self.objects[key], False
        self.objects[key] = copy.deepcopy(obj)
        return obj, True

    def replace_status(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        if self.fail_status:
            raise self.fail_status
        self.status_writes += 1
        self.pipeline["status"] = copy.deepcopy(status)

    def post_event(self, body: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    # -- test helpers ---------------------------------------------------------
    def set_child_status(self, kind: str, name: str, status: dict[str, Any]) -> None:
        self.objects[(kind, name)]["status"] = status


def make_pipeline(out: Path, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": UID,
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {"input": {"uri": "/reads/"}, "output": {"uri": str(out) + "/"}, **spec},
    }


def commit_manifest(out: Path, rows: int = 100, shards: int = 4, dim: int = 137) -> None:
    per = [rows // shards] * shards
    per[-1] += rows - sum(per)
    manifest = Manifest(
        format="parquet",
        dim=dim,
        rows=rows,
        embedding={"method": "kmer", "k": 4},
        shards=[ShardInfo(f"part-{i:05d}.parquet", n, 10 * n) for i, n in enumerate(per)],
        sources=[],
        schema={"read_id": "string"},
    )
    write_manifest(Store(), str(out), manifest)


def run(kube: FakeKube, attempt: int = 0, trigger: str = "test") -> str | None:
    ctx = rec.Context(kube, trigger=trigger, attempt=attempt, clock=lambda: "2025-01-01T00:00:00Z")  # type: ignore[arg-type]
    return rec.reconcile(ctx, NS, NAME)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def kube(out: Path) -> FakeKube:
    return FakeKube(make_pipeline(out))


def test_create_makes_configmap_and_rayjob_once(kube: FakeKube) -> None:
    assert run(kube) == "Pending"
    assert set(kube.objects) == {("ConfigMap", "r42-pipeline"), ("RayJob", "r42-etl")}
    assert kube.events == [
        ("Normal", "Created", "created RayJob r42-etl"),
        ("Normal", "Pending", "waiting for the RayJob to start"),
    ]
    assert kube.pipeline["status"]["ray"] == {"rayJob": "r42-etl"}
    writes = kube.status_writes
    assert run(kube) == "Pending"
    assert kube.status_writes == writes  # nothing changed, nothing written
    assert len(kube.objects) == 2


def test_full_happy_path(kube: FakeKube, out: Path) -> None:
    run(kube)
    kube.set_child_status(
        "RayJob", "r42-etl", {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}
    )
    assert run(kube, trigger="rayjob") == "Embedding"
    commit_manifest(out)
    kube.set_child_status(
        "RayJob", "r42-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    assert run(kube, trigger="rayjob") == "Clustering"
    sj = kube.objects[("SlurmJob", "r42-kmeans")]
    assert sj["spec"]["command"][4] == f"{out}/_manifest.json"
    status = kube.pipeline["status"]
    assert status["outputs"]["rows"] == 100 and status["outputs"]["shards"] == 4
    # Stage 1 is never consulted again, even if the RayJob disappears (e.g. TTL).
    del kube.objects[("RayJob", "r42-etl")]
    kube.set_child_status("SlurmJob", "r42-kmeans", {"phase": "Running", "jobId": 3})
    assert run(kube, trigger="slurmjob") == "Clustering"
    kube.set_child_status(
        "SlurmJob", "r42-kmeans", {"phase": "Succeeded", "jobId": 3, "exitCode": 0}
    )
    assert run(kube, trigger="slurmjob") == "Succeeded"
    assert [e[1] for e in kube.events] == [
        "Created", "Pending", "Embedding", "Created", "Clustering", "Succeeded",
    ]  # fmt: skip
    assert kube.pipeline["status"]["outputs"]["centroids"] == f"{out}/clustering/centroids.parquet"
    writes = kube.status_writes
    assert run(kube, trigger="resume") == "Succeeded"  # terminal: read-only
    assert kube.status_writes == writes


def test_manifest_not_visible_is_retried_then_fails(kube: FakeKube) -> None:
    run(kube)
    kube.set_child_status(
        "RayJob", "r42-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    with pytest.raises(kopf.TemporaryError) as exc:
        run(kube, attempt=2)
    assert exc.value.delay == 20.0
    status = kube.pipeline["status"]
    assert status["phase"] == "Embedding"
    assert condition(status, "Ready")["reason"] == "ManifestNotVisible"
    assert condition(status, "EmbeddingComplete")["reason"] == "ManifestPending"
    with pytest.raises(kopf.PermanentError, match="RetriesExhausted"):
        run(kube, attempt=rec.RETRIES - 1)
    assert kube.pipeline["status"]["phase"] == "Failed"
    assert ("SlurmJob", "r42-kmeans") not in kube.objects


def test_rayjob_failure_fails_the_pipeline(kube: FakeKube) -> None:
    run(kube)
    kube.set_child_status(
        "RayJob",
        "r42-etl",
        {
            "jobDeploymentStatus": "Failed",
            "jobStatus": "FAILED",
            "reason": "AppFailed",
            "message": "bad FASTQ record 7 in a.fq",
        },
    )
    with pytest.raises(kopf.PermanentError, match="RayJobFailed: RayJob r42-etl Failed/FAILED"):
        run(kube, trigger="rayjob")
    status = kube.pipeline["status"]
    assert status["phase"] == "Failed"
    assert "bad FASTQ record 7 in a.fq" in condition(status, "Ready")["message"]
    assert kube.events[-1][:2] == ("Warning", "Failed")
    # The failure is reported once; later passes leave it alone.
    assert run(kube, trigger="rayjob") == "Failed"


def test_inconsistent_manifest_fails(kube: FakeKube, out: Path) -> None:
    run(kube)
    out.mkdir(parents=True)
    (out / "_manifest.json").write_text(
        '{"format_version": 1, "rows": 5, "shards": [], "sources": []}'
    )
    kube.set_child_status(
        "RayJob", "r42-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    with pytest.raises(kopf.PermanentError, match="ManifestInvalid"):
        run(kube)


def test_slurmjob_failure_and_deletion(kube: FakeKube, out: Path) -> None:
    commit_manifest(out)
    run(kube)
    kube.set_child_status(
        "RayJob", "r42-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    run(kube)
    kube.set_child_status(
        "SlurmJob", "r42-kmeans", {"phase": "Failed", "exitCode": 137, "reason": "OUT_OF_MEMORY"}
    )
    with pytest.raises(kopf.PermanentError, match="SlurmJobFailed"):
        run(kube)
    assert condition(kube.pipeline["status"], "ClusteringComplete")["reason"] == "SlurmJobFailed"


def test_deleted_child_mid_run_fails(kube: FakeKube) -> None:
    run(kube)
    del kube.objects[("RayJob", "r42-etl")]
    with pytest.raises(kopf.PermanentError, match="RayJobDeleted"):
        run(kube)


def test_child_name_taken_by_someone_else(kube: FakeKube) -> None:
    kube.objects[("RayJob", "r42-etl")] = {"kind": "RayJob", "metadata": {"name": "r42-etl"}}
    with pytest.raises(kopf.PermanentError, match="ChildConflict"):
        run(kube)


def test_api_errors_are_transient(kube: FakeKube) -> None:
    kube.fail_get["RayJob"] = TransientError("APIUnavailable", "get RayJob: HTTP 503", delay=7.0)
    with pytest.raises(kopf.TemporaryError) as exc:
        run(kube)
    assert exc.value.delay == 7.0  # Retry-After wins over the backoff
    assert condition(kube.pipeline["status"], "Ready")["reason"] == "APIUnavailable"
    kube.fail_get.clear()
    kube.fail_status = TransientError("APIUnavailable", "HTTP 500")
    with pytest.raises(kopf.TemporaryError) as exc:
        run(kube, attempt=1)
    assert exc.value.delay == 10.0


def test_a_status_conflict_is_retried_once_on_a_fresh_read(kube: FakeKube) -> None:
    conflicts = [TransientError("Conflict", "changed meanwhile", delay=1.0)]
    real = kube.replace_status

    def flaky(body: dict[str, Any], status: dict[str, Any]) -> None:
        if conflicts:
            raise conflicts.pop()
        real(body, status)

    kube.replace_status = flaky  # type: ignore[method-assign]
    assert run(kube) == "Pending"
    assert kube.status_writes == 1
    # Two in a row: back off and let Kopf retry.
    conflicts[:] = [TransientError("Conflict", "x", delay=1.0)] * 2
    kube.pipeline["status"] = {}
    with pytest.raises(kopf.TemporaryError) as exc:
        run(kube)
    assert exc.value.delay == 1.0


@pytest.mark.faults
def test_spec_rules_cel_cannot_express_fail_the_pipeline(out: Path) -> None:
    body = make_pipeline(out, s3={"allowedBuckets": ["only-this"]})
    body["spec"]["input"]["uri"] = "s3://other-bucket/reads/"
    kube = FakeKube(body)
    with pytest.raises(kopf.PermanentError, match="InvalidSpec"):
        run(kube)
    assert kube.objects == {}
    assert "allowedBuckets" in condition(kube.pipeline["status"], "Ready")["message"]


def test_gone_pipeline_is_a_no_op() -> None:
    assert run(FakeKube({})) is None


def test_manifest_dimension_must_match_the_spec(out: Path) -> None:
    spec = VectorPipelineSpec.model_validate({"input": {"uri": "/r/"}, "output": {"uri": str(out)}})
    commit_manifest(out, dim=embedding_dim(spec.embedding) + 1)
    with pytest.raises(InvalidStateError, match="dimension"):
        read_committed_manifest(spec)
    commit_manifest(out)
    view = read_committed_manifest(spec)
    assert (view.rows, view.shards, view.bytes) == (100, 4, 1000)


def test_manifest_on_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with moto.mock_aws():
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="runs-bucket")
        spec = VectorPipelineSpec.model_validate(
            {
                "input": {"uri": "/r/"},
                "output": {"uri": "s3://runs-bucket/r42/"},
                "s3": {"region": "us-east-1"},
            }
        )
        with pytest.raises(TransientError, match="ManifestNotVisible"):
            read_committed_manifest(spec)
        commit_manifest_s3 = Store()
        Store.__init__(commit_manifest_s3)
        manifest = Manifest(
            format="parquet",
            dim=137,
            rows=3,
            embedding={},
            shards=[ShardInfo("p", 3, 9)],
            sources=[],
            schema={},
        )
        write_manifest(commit_manifest_s3, "s3://runs-bucket/r42/", manifest)
        assert read_committed_manifest(spec).rows == 3
