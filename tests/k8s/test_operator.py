"""The operator, run as `python -m vectorpipe_operator`, against the real kube-apiserver.

Each test starts the operator scoped to its own namespace, creates a
VectorPipeline and plays the other controllers' parts by writing child
statuses through the status subresource exactly as KubeRay and the
slurm-bridge would (stage 1's manifest is written to a real local output
directory with the workloads' own writer). Garbage collection is the real
kube-controller-manager's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.controlplane import ControlPlane
from tests.support.operator import (
    Cluster,
    Operator,
    commit_manifest,
    condition,
    owner_of,
    pipeline,
    start_operator,
)
from vectorpipe_operator.builders import build_rayjob
from vectorpipe_operator.resources import Pipeline
from vectorpipe_workloads.pipeline_file import parse_document

pytestmark = pytest.mark.k8s


@pytest.fixture
def operator(crds: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    op = start_operator(crds, namespace, tmp_path / "operator.log")
    yield op
    op.stop()
    # Shown by pytest only when the test failed.
    print(f"----- operator log (tail) -----\n{op.tail(120)}")


@pytest.fixture
def cluster(crds: ControlPlane, namespace: str) -> Cluster:
    return Cluster(crds, namespace)


def test_create_makes_an_owned_rayjob_with_the_right_spec(
    operator: Operator, cluster: Cluster, tmp_path: Path
) -> None:
    created = cluster.create(pipeline("r1", tmp_path / "out"))
    uid = created["metadata"]["uid"]
    rj = cluster.wait("RayJob r1-etl", lambda: cluster.get("rayjob", "r1-etl"))
    assert owner_of(rj) == [("VectorPipeline", "r1", uid, True)]
    assert rj["metadata"]["labels"]["vectorpipe.io/pipeline-uid"] == uid

    expected = build_rayjob(Pipeline.from_body(cluster.must("vectorpipeline", "r1")))["spec"]
    spec = rj["spec"]
    assert spec["entrypoint"] == (
        "python -m vectorpipe_workloads etl --pipeline /etc/vectorpipe/pipeline.yaml"
    )
    for key in (
        "entrypoint",
        "submissionMode",
        "shutdownAfterJobFinishes",
        "ttlSecondsAfterFinished",
        "backoffLimit",
    ):
        assert spec[key] == expected[key], key
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    (workers,) = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert workers["replicas"] == 2
    worker = workers["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    # The pipeline file, plus the scratch space a read-only root needs (/tmp, /dev/shm).
    volumes = {v["name"]: v for v in head["volumes"]}
    assert volumes["pipeline"] == {"name": "pipeline", "configMap": {"name": "r1-pipeline"}}
    assert (
        head["volumes"]
        == expected["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"]
    )
    mounts = {m["mountPath"]: m["name"] for m in head["containers"][0]["volumeMounts"]}
    assert mounts["/etc/vectorpipe"] == "pipeline"
    assert {"/tmp", "/dev/shm"} <= set(mounts), mounts

    cm = cluster.must("configmap", "r1-pipeline")
    assert owner_of(cm) == [("VectorPipeline", "r1", uid, True)]
    doc = parse_document(yaml.safe_load(cm["data"]["pipeline.yaml"]))
    assert doc.spec.hpc.app.clusters == 5

    p = cluster.wait_phase("r1", "Pending")
    assert p["status"]["observedGeneration"] == 1
    assert p["status"]["ray"] == {"rayJob": "r1-etl"}
    assert condition(p, "EmbeddingComplete")["reason"] == "RayJobCreated"
    assert [c["type"] for c in p["status"]["conditions"]] == [
        "EmbeddingComplete",
        "ClusteringComplete",
        "Ready",
    ]
    # No finalizer: deletion is owner references and the garbage collector.
    assert not p["metadata"].get("finalizers")
    reasons = cluster.wait(
        "a Created event", lambda: {e["reason"] for e in cluster.events("r1")} >= {"Created"}
    )
    assert reasons


def test_happy_path_through_both_stages(
    operator: Operator, cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cluster.create(pipeline("r2", out))
    cluster.wait("RayJob r2-etl", lambda: cluster.get("rayjob", "r2-etl"))

    cluster.set_status(
        "rayjob", "r2-etl",
        {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "startTime": "2025-01-01T00:00:00Z"},
    )  # fmt: skip
    p = cluster.wait_phase("r2", "Embedding")
    assert p["status"]["ray"]["jobStatus"] == "RUNNING"

    commit_manifest(out, rows=1000)
    cluster.set_status(
        "rayjob", "r2-etl",
        {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "endTime": "2025-01-01T00:10:00Z"},
    )  # fmt: skip
    sj = cluster.wait("SlurmJob r2-kmeans", lambda: cluster.get("slurmjob", "r2-kmeans"))
    uid = cluster.must("vectorpipeline", "r2")["metadata"]["uid"]
    assert owner_of(sj) == [("VectorPipeline", "r2", uid, True)]
    cmd = sj["spec"]["command"]
    assert cmd[:3] == ["python", "-m", "vectorpipe_workloads.kmeans"]
    assert cmd[cmd.index("--manifest") + 1] == f"{out}/_manifest.json"
    assert cmd[cmd.index("--output") + 1] == f"{out}/clustering/"
    assert cmd[cmd.index("--clusters") + 1] == "5"
    assert (sj["spec"]["launcher"], sj["spec"]["nodes"], sj["spec"]["ntasksPerNode"]) == (
        "mpirun",
        2,
        2,
    )

    p = cluster.wait_phase("r2", "Clustering")
    assert p["status"]["outputs"]["rows"] == 1000
    assert p["status"]["outputs"]["shards"] == 4
    assert condition(p, "EmbeddingComplete")["status"] == "True"

    cluster.set_status(
        "slurmjob", "r2-kmeans", {"phase": "Running", "jobId": 42, "state": "RUNNING"}
    )
    cluster.wait(
        "slurm job id mirrored",
        lambda: (
            (cluster.must("vectorpipeline", "r2")["status"].get("slurm") or {}).get("jobId") == 42
        ),
    )
    cluster.set_status(
        "slurmjob", "r2-kmeans",
        {"phase": "Succeeded", "jobId": 42, "state": "COMPLETED", "exitCode": 0},
    )  # fmt: skip
    p = cluster.wait_phase("r2", "Succeeded")
    status = p["status"]
    assert condition(p, "Ready")["status"] == "True"
    assert condition(p, "ClusteringComplete")["reason"] == "SlurmJobSucceeded"
    assert status["outputs"]["centroids"] == f"{out}/clustering/centroids.parquet"
    assert status["slurm"]["exitCode"] == 0
    assert status["completionTime"] and status["startTime"]

    row = cluster.k8s.kubectl("get", "vp", "r2", "-n", cluster.ns).stdout.splitlines()[1].split()
    assert row[:5] == ["r2", "Succeeded", "SUCCEEDED", "Succeeded", "1000"]
    reasons = cluster.wait(
        "transition events",
        lambda: (
            {e["reason"] for e in cluster.events("r2")} >= {"Embedding", "Clustering", "Succeeded"}
        ),
    )
    assert reasons
    metrics = operator.metrics()
    assert 'vectorpipe_operator_pipelines{phase="Succeeded"} 1.0' in metrics
    assert 'vectorpipe_operator_reconciles_total{result="ok",trigger="slurmjob"}' in metrics


@pytest.mark.faults
def test_rayjob_failure_fails_the_pipeline_with_the_reason(
    operator: Operator, cluster: Cluster, tmp_path: Path
) -> None:
    cluster.create(pipeline("r3", tmp_path / "out"))
    cluster.wait("RayJob r3-etl", lambda: cluster.get("rayjob", "r3-etl"))
    cluster.set_status(
        "rayjob", "r3-etl",
        {
            "jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed",
            "message": "reads.fq: record 7: bad quality line",
        },
    )  # fmt: skip
    p = cluster.wait_phase("r3", "Failed")
    ready = condition(p, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "RayJobFailed"
    assert "reads.fq: record 7: bad quality line" in ready["message"]
    assert condition(p, "ClusteringComplete")["reason"] == "NotStarted"
    assert cluster.get("slurmjob", "r3-kmeans") is None
    cluster.wait(
        "a Warning event",
        lambda: any(
            e["type"] == "Warning" and e["reason"] == "Failed" for e in cluster.events("r3")
        ),
    )


@pytest.mark.faults
def test_manifest_not_yet_visible_is_retried(
    operator: Operator, cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cluster.create(pipeline("r4", out))
    cluster.wait("RayJob r4-etl", lambda: cluster.get("rayjob", "r4-etl"))
    cluster.set_status(
        "rayjob", "r4-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    p = cluster.wait(
        "the transient condition",
        lambda: (
            (obj := cluster.get("vectorpipeline", "r4"))
            and condition(obj, "Ready").get("reason") == "ManifestNotVisible"
            and obj
        ),
    )
    assert p["status"]["phase"] == "Embedding"
    commit_manifest(out, rows=10, shards=2)
    # The handler's TemporaryError brings it back after a short, bounded delay.
    p = cluster.wait_phase("r4", "Clustering", timeout=90)
    assert p["status"]["outputs"]["rows"] == 10


@pytest.mark.faults
def test_spec_rules_cel_cannot_express_fail_the_pipeline(
    operator: Operator, cluster: Cluster, tmp_path: Path
) -> None:
    body = pipeline("r5", tmp_path / "out", s3={"allowedBuckets": ["team-bucket"]})
    body["spec"]["input"] = {"uri": "s3://other-bucket/reads/"}
    cluster.create(body)
    p = cluster.wait_phase("r5", "Failed")
    assert condition(p, "Ready")["reason"] == "InvalidSpec"
    assert "other-bucket" in condition(p, "Ready")["message"]
    assert cluster.get("rayjob", "r5-etl") is None


@pytest.mark.faults
def test_delete_garbage_collects_every_child(
    operator: Operator, cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cluster.create(pipeline("r6", out))
    cluster.wait("RayJob r6-etl", lambda: cluster.get("rayjob", "r6-etl"))
    commit_manifest(out)
    cluster.set_status(
        "rayjob", "r6-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    cluster.wait("SlurmJob r6-kmeans", lambda: cluster.get("slurmjob", "r6-kmeans"))
    children = [("rayjob", "r6-etl"), ("slurmjob", "r6-kmeans"), ("configmap", "r6-pipeline")]
    cluster.k8s.kubectl("delete", "vectorpipeline", "r6", "-n", cluster.ns, "--wait=false")
    cluster.wait(
        "the garbage collector to delete every child",
        lambda: all(cluster.get(kind, name) is None for kind, name in children),
    )
    assert cluster.get("vectorpipeline", "r6") is None
    cluster.wait(
        "the gauge to forget it",
        lambda: 'vectorpipe_operator_pipelines{phase="Clustering"} 0.0' in operator.metrics(),
    )


@pytest.mark.faults
def test_restart_resumes_without_resubmitting(
    operator: Operator, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cluster.create(pipeline("r7", out))
    rj = cluster.wait("RayJob r7-etl", lambda: cluster.get("rayjob", "r7-etl"))
    cluster.wait_phase("r7", "Pending")
    operator.stop()
    # While the operator is down, stage 1 finishes.
    commit_manifest(out, rows=77, shards=1)
    cluster.set_status(
        "rayjob", "r7-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    again = start_operator(cluster.k8s, namespace, tmp_path / "operator-2.log")
    try:
        p = cluster.wait_phase("r7", "Clustering")
        assert p["status"]["outputs"]["rows"] == 77
        assert cluster.must("rayjob", "r7-etl")["metadata"]["uid"] == rj["metadata"]["uid"]
        listing = json.loads(
            cluster.k8s.kubectl("get", "rayjobs,slurmjobs", "-n", cluster.ns, "-o", "json").stdout
        )
        assert sorted(i["metadata"]["name"] for i in listing["items"]) == ["r7-etl", "r7-kmeans"]
    finally:
        again.stop()
        print(f"----- restarted operator log (tail) -----\n{again.tail(80)}")
