"""The reconcile steps against an in-memory API: ordering, idempotency and error mapping.

The real API server is exercised in tests/k8s/test_operator.py; here the
typed `FakeOperatorKube` stands in for the operator's `KubeApi` so every
branch (transient, permanent, last attempt, conflict, a new run, a vanished
RayJob) is cheap to reach.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest

from tests.support import operator as support
from tests.support.fakes import FakeOperatorKube as FakeKube
from vectorpipe_api.pipeline import VectorPipelineSpec, embedding_dim
from vectorpipe_kopf.errors import InvalidStateError, TransientError
from vectorpipe_operator import reconcile as rec
from vectorpipe_operator.manifests import read_committed_manifest
from vectorpipe_operator.status import condition
from vectorpipe_workloads.manifest import Manifest, ShardInfo, write_manifest
from vectorpipe_workloads.storage import Store

NS, NAME, UID = "ns", "r42", "uid-r42"


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


def commit_manifest(
    out: Path, rows: int = 100, shards: int = 4, dim: int = 137, run: str = UID
) -> None:
    support.commit_manifest(out, rows, shards, dim, run=run, bytes_per_row=10)


def run(
    kube: FakeKube, attempt: int = 0, trigger: str = "test", hooks: rec.Hooks | None = None
) -> str | None:
    ctx = rec.Context(
        kube,
        trigger=trigger,
        attempt=attempt,
        clock=lambda: "2025-01-01T00:00:00Z",
        hooks=hooks or rec.Hooks(),
    )
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


def test_deleted_rayjob_without_a_manifest_fails(kube: FakeKube) -> None:
    run(kube)
    del kube.objects[("RayJob", "r42-etl")]
    with pytest.raises(kopf.PermanentError, match="RayJobDeleted"):
        run(kube)
    assert ("RayJob", "r42-etl") not in kube.objects  # never re-created: no second stage 1


def test_a_committed_manifest_wins_over_a_vanished_rayjob(kube: FakeKube, out: Path) -> None:
    """KubeRay's delete-after-finish removed the RayJob while the operator was down."""
    run(kube)
    commit_manifest(out)
    del kube.objects[("RayJob", "r42-etl")]
    assert run(kube, trigger="resume") == "Clustering"
    assert ("SlurmJob", "r42-kmeans") in kube.objects
    assert ("RayJob", "r42-etl") not in kube.objects
    assert condition(kube.pipeline["status"], "EmbeddingComplete")["status"] == "True"


def test_a_manifest_of_another_run_does_not_count(kube: FakeKube, out: Path) -> None:
    run(kube)
    commit_manifest(out, run="uid-of-a-deleted-pipeline")
    del kube.objects[("RayJob", "r42-etl")]
    with pytest.raises(kopf.PermanentError, match="RayJobDeleted"):
        run(kube)
    assert ("SlurmJob", "r42-kmeans") not in kube.objects


def test_one_get_and_at_most_one_create_per_child_per_pass(kube: FakeKube, out: Path) -> None:
    run(kube)
    assert kube.gets == {("ConfigMap", "r42-pipeline"): 1, ("RayJob", "r42-etl"): 1}
    assert kube.creates == {("ConfigMap", "r42-pipeline"): 1, ("RayJob", "r42-etl"): 1}
    commit_manifest(out)
    kube.set_child_status(
        "RayJob", "r42-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    kube.gets.clear()
    kube.creates.clear()
    run(kube)
    assert kube.gets == {
        ("ConfigMap", "r42-pipeline"): 1,
        ("RayJob", "r42-etl"): 1,
        ("SlurmJob", "r42-kmeans"): 1,
    }
    assert kube.creates == {("SlurmJob", "r42-kmeans"): 1}


def test_child_name_taken_by_someone_else(kube: FakeKube) -> None:
    kube.put({"kind": "RayJob", "metadata": {"name": "r42-etl"}})
    with pytest.raises(kopf.PermanentError, match="ChildConflict"):
        run(kube)
    assert kube.creates[("RayJob", "r42-etl")] == 0


def test_a_create_lost_to_a_concurrent_one_adopts_ours(kube: FakeKube) -> None:
    """A 409 answers with the existing child; ours (same owner) is adopted, not re-made."""

    def someone_creates(kind: str, name: str) -> None:
        if kind == "RayJob" and kube.after_get is not None:
            kube.after_get = None
            kube.put(
                {
                    "kind": "RayJob",
                    "metadata": {"name": "r42-etl", "ownerReferences": [{"uid": UID}]},
                }
            )

    # The GET answers "absent"; the other create lands between our GET and our create.
    kube.after_get = someone_creates
    assert run(kube) == "Pending"
    assert kube.creates[("RayJob", "r42-etl")] == 1  # ours was answered with a 409
    assert kube.objects[("RayJob", "r42-etl")]["metadata"]["ownerReferences"] == [{"uid": UID}]
    assert "spec" not in kube.objects[("RayJob", "r42-etl")]  # theirs stands, not re-made
    assert [e for e in kube.events if e[1] == "Created"] == []


def test_the_after_create_hook_runs_before_the_status_records_the_child(
    kube: FakeKube,
) -> None:
    class CrashError(Exception):
        pass

    def crash(kind: str) -> None:
        if kind == "RayJob":
            raise CrashError(kind)

    with pytest.raises(CrashError):
        run(kube, hooks=rec.Hooks(after_create=crash))
    assert ("RayJob", "r42-etl") in kube.objects
    assert "status" not in kube.pipeline
    # The restarted operator adopts the RayJob instead of creating a second one.
    assert run(kube) == "Pending"
    assert kube.creates[("RayJob", "r42-etl")] == 1


def new_run(kube: FakeKube, run_id: str) -> None:
    """What `kubectl apply` of an edited spec with a new runId does."""
    kube.pipeline["spec"]["runId"] = run_id
    kube.pipeline["metadata"]["generation"] += 1


def test_a_new_run_id_ends_the_previous_run_and_starts_afresh(kube: FakeKube, out: Path) -> None:
    commit_manifest(out)
    run(kube)
    kube.set_child_status(
        "RayJob", "r42-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    assert run(kube) == "Clustering"
    kube.set_child_status("SlurmJob", "r42-kmeans", {"phase": "Succeeded", "exitCode": 0})
    assert run(kube) == "Succeeded"
    assert run(kube) == "Succeeded"  # terminal for this generation

    new_run(kube, "b")
    kube.pipeline["spec"]["hpc"] = {"app": {"clusters": 7}}
    assert run(kube, trigger="update") == "Pending"
    assert sorted(kube.deleted) == [
        ("ConfigMap", "r42-pipeline"),
        ("RayJob", "r42-etl"),
        ("SlurmJob", "r42-kmeans"),
    ]
    assert set(kube.objects) == {("ConfigMap", "r42-b-pipeline"), ("RayJob", "r42-b-etl")}
    status = kube.pipeline["status"]
    assert (status["runId"], status["observedGeneration"]) == ("b", 2)
    assert status["ray"] == {"rayJob": "r42-b-etl"}
    assert "outputs" not in status and "slurm" not in status and "completionTime" not in status
    # The previous run's manifest is not this run's commit point.
    kube.set_child_status(
        "RayJob", "r42-b-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    with pytest.raises(kopf.TemporaryError, match="ManifestNotVisible"):
        run(kube)
    commit_manifest(out, run=f"{UID}/b")
    assert run(kube) == "Clustering"
    sj = kube.objects[("SlurmJob", "r42-b-kmeans")]
    assert sj["spec"]["command"][sj["spec"]["command"].index("--clusters") + 1] == "7"


def test_a_new_run_after_a_failure_runs_again(kube: FakeKube) -> None:
    run(kube)
    kube.set_child_status("RayJob", "r42-etl", {"jobDeploymentStatus": "Failed"})
    with pytest.raises(kopf.PermanentError):
        run(kube)
    new_run(kube, "retry1")
    assert run(kube) == "Pending"
    assert kube.pipeline["status"]["phase"] == "Pending"
    assert ("RayJob", "r42-retry1-etl") in kube.objects


def test_a_previous_runs_children_are_deleted_only_if_ours(kube: FakeKube) -> None:
    run(kube)
    # Someone else's object happens to carry the previous run's SlurmJob name.
    kube.put({"kind": "SlurmJob", "metadata": {"name": "r42-kmeans", "ownerReferences": []}})
    new_run(kube, "two")
    run(kube)
    assert ("SlurmJob", "r42-kmeans") in kube.objects
    assert ("RayJob", "r42-etl") not in kube.objects


def test_api_errors_are_transient(kube: FakeKube) -> None:
    kube.fail_get["RayJob"] = TransientError(
        "KubernetesUnavailable", "get RayJob: HTTP 503", delay=7.0
    )
    with pytest.raises(kopf.TemporaryError) as exc:
        run(kube)
    assert exc.value.delay == 7.0  # Retry-After wins over the backoff
    assert condition(kube.pipeline["status"], "Ready")["reason"] == "KubernetesUnavailable"
    kube.fail_get.clear()
    kube.fail_status = TransientError("KubernetesUnavailable", "HTTP 500")
    with pytest.raises(kopf.TemporaryError) as exc:
        run(kube, attempt=1)
    assert exc.value.delay == 10.0


def test_a_status_conflict_is_retried_once_on_a_fresh_read(kube: FakeKube) -> None:
    kube.status_failures = [TransientError("Conflict", "changed meanwhile", delay=1.0)]
    assert run(kube) == "Pending"
    assert kube.status_writes == 1
    # Two in a row: back off and let Kopf retry.
    kube.status_failures = [TransientError("Conflict", "x", delay=1.0)] * 2
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
        read_committed_manifest(spec, UID)
    commit_manifest(out)
    view = read_committed_manifest(spec, UID)
    assert (view.rows, view.shards, view.bytes) == (100, 4, 1000)


def test_manifest_on_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    # An endpoint left by the session's loopback S3 (or an earlier test) would
    # send these calls past mock_aws to a real server.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
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
            read_committed_manifest(spec, UID)
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
            run=UID,
        )
        write_manifest(commit_manifest_s3, "s3://runs-bucket/r42/", manifest)
        assert read_committed_manifest(spec, UID).rows == 3
