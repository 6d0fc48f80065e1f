"""Issue 13's faults on the real-pod path, and what deleting a pipeline takes with it.

- A Ray image that cannot start shows in the pipeline's conditions with the pod
  and the kubelet's reason, and fails the pipeline after the operator's grace
  (`operator.podStartTimeoutSeconds`, set short by the release fixture) instead
  of hanging; its RayJob and pods are removed.
- A Ray worker pod killed mid-stage-1 and the operator's pod deleted mid-run in
  one pipeline: it completes with every read exactly once (no duplicate, no
  missing row), one RayJob, one Slurm job.
- Deleting a running pipeline removes its RayCluster's pods.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.node.test_pipeline_in_pods import (
    apply,
    phase,
    pipeline_body,
    pods,
    restricted_namespace,
    upload_reads,
)
from tests.support.node import NetnsServices, NodeCluster

pytestmark = [pytest.mark.node, pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(2400)]

RAY_PODS = "app.kubernetes.io/managed-by=vectorpipe-operator"


def running(cluster: NodeCluster, ns: str, node_type: str) -> list[dict[str, Any]]:
    """The pipeline's Ray pods of one KubeRay node type (head, worker) that run."""
    found = pods(cluster, ns, f"{RAY_PODS},ray.io/node-type={node_type}")
    return [p for p in found if p["status"].get("phase") == "Running"]


def condition(vp: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in vp.get("status", {}).get("conditions", []):
        if c["type"] == ctype:
            return dict(c)
    return {}


def test_an_image_that_cannot_start_fails_the_pipeline_with_the_pod_and_reason(
    node_cluster: NodeCluster,
    node_services: NetnsServices,
    vectorpipe_release: str,
    tmp_path: Path,
    pipelines_namespaces: list[str],
) -> None:
    ns = restricted_namespace(
        node_cluster, node_services, "pipelines-badimage", pipelines_namespaces
    )
    body = pipeline_body(
        "badimage", node_services, "vp-node-badimage", image="localhost/vectorpipe/missing:dev"
    )
    apply(node_cluster, ns, body, tmp_path)

    def stuck() -> dict[str, Any]:
        vp = node_cluster.get("vectorpipeline", "-n", ns, "badimage")
        return (
            condition(vp, "PodsHealthy")
            if condition(vp, "PodsHealthy").get("status") == "False"
            else {}
        )

    cond = node_cluster.wait("the stuck pod in the conditions", stuck, timeout=300)
    # Nothing can pull from a registry here: the kubelet says so, and the
    # condition names the pod, its container and that reason.
    assert cond["reason"] in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"), cond
    assert "badimage-etl-" in cond["message"], cond

    node_cluster.wait(
        "the pipeline to fail", lambda: phase(node_cluster, ns, "badimage") == "Failed", 300
    )
    vp = node_cluster.get("vectorpipeline", "-n", ns, "badimage")
    assert condition(vp, "Ready")["reason"] in cond["reason"] + " ImagePullBackOff ErrImagePull"
    # The run is ended: its RayJob goes, and KubeRay's pods with it.
    node_cluster.wait(
        "the RayJob and its pods to go",
        lambda: (
            not node_cluster.get("rayjobs", "-n", ns)["items"]
            and not pods(node_cluster, ns, RAY_PODS)
        ),
        timeout=180,
    )


def _read_ids(services: NetnsServices, bucket: str, prefix: str) -> list[str]:
    """Every read id in the shards the run's manifest lists (paths relative to `prefix`)."""
    import pyarrow.parquet as pq

    s3c = services.s3_client()
    raw = s3c.get_object(Bucket=bucket, Key=f"{prefix}_manifest.json")["Body"].read()
    ids: list[str] = []
    for shard in json.loads(raw)["shards"]:
        key = prefix + shard["path"].rsplit("/", 1)[-1]
        table = pq.read_table(io.BytesIO(s3c.get_object(Bucket=bucket, Key=key)["Body"].read()))
        ids += table.column("read_id").to_pylist()
    return ids


def test_a_killed_worker_and_a_deleted_operator_pod_lose_and_repeat_nothing(
    node_cluster: NodeCluster,
    node_services: NetnsServices,
    vectorpipe_release: str,
    tmp_path: Path,
    pipelines_namespaces: list[str],
) -> None:
    ns = restricted_namespace(node_cluster, node_services, "pipelines-chaos", pipelines_namespaces)
    bucket = "vp-node-chaos"
    upload_reads(node_services, bucket)
    body = pipeline_body("chaos", node_services, bucket)
    apply(node_cluster, ns, body, tmp_path)

    def embedding_on_a_worker() -> list[dict[str, Any]]:
        if phase(node_cluster, ns, "chaos") != "Embedding":
            return []
        rj = node_cluster.get("rayjob", "-n", ns, "chaos-etl")
        if rj.get("status", {}).get("jobStatus") != "RUNNING":
            return []
        return running(node_cluster, ns, "worker")

    workers = node_cluster.wait("stage 1 running on a worker", embedding_on_a_worker, 900, 1)
    victim = workers[0]["metadata"]["name"]
    node_cluster.kubectl("-n", ns, "delete", "pod", victim, "--grace-period=0", "--force")
    op_pods = node_cluster.get(
        "pods", "-n", vectorpipe_release, "-l", "app.kubernetes.io/component=operator"
    )["items"]
    node_cluster.kubectl(
        "-n", vectorpipe_release, "delete", "pod", op_pods[0]["metadata"]["name"], "--wait=false"
    )

    node_cluster.wait(
        "the pipeline to finish",
        lambda: phase(node_cluster, ns, "chaos") in ("Succeeded", "Failed"),
        timeout=1200,
        interval=3,
    )
    vp = node_cluster.get("vectorpipeline", "-n", ns, "chaos")
    assert vp["status"]["phase"] == "Succeeded", json.dumps(vp["status"], indent=1)
    # KubeRay replaced the worker; the operator's pod was replaced too.
    new_ops = node_cluster.get(
        "pods", "-n", vectorpipe_release, "-l", "app.kubernetes.io/component=operator"
    )["items"]
    assert op_pods[0]["metadata"]["name"] not in {p["metadata"]["name"] for p in new_ops}

    out_prefix = body["spec"]["output"]["uri"].removeprefix(f"s3://{bucket}/")
    ids = _read_ids(node_services, bucket, out_prefix)
    assert len(ids) == 15000, len(ids)
    assert len(set(ids)) == len(ids), "a read was written twice"
    assert vp["status"]["outputs"]["rows"] == 15000

    assert len(node_cluster.get("rayjobs", "-n", ns)["items"]) <= 1
    sj = node_cluster.get("slurmjob", "-n", ns, "chaos-kmeans")
    jobs = node_services.slurm_jobs(sj["metadata"]["uid"])
    assert len(jobs) == 1, jobs


def test_deleting_a_running_pipeline_removes_its_ray_pods(
    node_cluster: NodeCluster,
    node_services: NetnsServices,
    vectorpipe_release: str,
    tmp_path: Path,
    pipelines_namespaces: list[str],
) -> None:
    ns = restricted_namespace(node_cluster, node_services, "pipelines-delete", pipelines_namespaces)
    body = pipeline_body("gone", node_services, "vp-node-delete")
    upload_reads(node_services, "vp-node-delete")
    apply(node_cluster, ns, body, tmp_path)
    node_cluster.wait("the Ray head to run", lambda: running(node_cluster, ns, "head"), timeout=600)
    node_cluster.kubectl("-n", ns, "delete", "vectorpipeline", "gone", "--wait=true", timeout=300)
    node_cluster.wait(
        "the RayJob, RayCluster and their pods to go",
        lambda: (
            not node_cluster.get("rayjobs,rayclusters", "-n", ns)["items"]
            and not pods(node_cluster, ns, RAY_PODS)
        ),
        timeout=300,
    )
