"""Issue 13: stage 1 autoscales on the real cluster.

The pipeline starts with no worker (`replicas: 0`, `minReplicas: 0`,
`maxReplicas: 1`) and a head that offers Ray no CPU, so stage 1's tasks can
only run on a worker: KubeRay's in-tree autoscaler (a container in the head
pod) must add one for the run to finish.
"""

from __future__ import annotations

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

pytestmark = [pytest.mark.node, pytest.mark.slow, pytest.mark.timeout(2400)]


def test_the_autoscaler_adds_a_worker_under_load(
    node_cluster: NodeCluster,
    node_services: NetnsServices,
    vectorpipe_release: str,
    tmp_path: Path,
    pipelines_namespaces: list[str],
) -> None:
    ns = restricted_namespace(
        node_cluster, node_services, "pipelines-autoscale", pipelines_namespaces
    )
    bucket = "vp-node-autoscale"
    upload_reads(node_services, bucket)
    body = pipeline_body(
        "scale",
        node_services,
        bucket,
        head={"cpu": "500m", "memory": "2Gi", "rayStartParams": {"num-cpus": "0"}},
        workers={
            "cpu": "500m",
            "memory": "2Gi",
            "rayStartParams": {"num-cpus": "1"},
            "replicas": 0,
            "minReplicas": 0,
            "maxReplicas": 1,
        },
        autoscaler={"cpu": "200m", "memory": "512Mi", "idleTimeoutSeconds": 30},
    )
    apply(node_cluster, ns, body, tmp_path)

    head_containers: list[str] = []
    workers_seen: set[str] = set()

    def watch() -> bool:
        for p in pods(node_cluster, ns, "app.kubernetes.io/managed-by=vectorpipe-operator"):
            kind = p["metadata"]["labels"].get("ray.io/node-type")
            if kind == "head" and not head_containers:
                head_containers.extend(c["name"] for c in p["spec"]["containers"])
            if kind == "worker":
                workers_seen.add(p["metadata"]["name"])
        return phase(node_cluster, ns, "scale") in ("Succeeded", "Failed")

    node_cluster.wait("the pipeline to finish", watch, timeout=1200, interval=3)
    vp: dict[str, Any] = node_cluster.get("vectorpipeline", "-n", ns, "scale")
    assert vp["status"]["phase"] == "Succeeded", json.dumps(vp["status"], indent=1)
    assert "autoscaler" in head_containers, head_containers
    # No worker was asked for at the start: the one that ran was added under load.
    assert workers_seen, "no worker pod was ever created"
    assert vp["status"]["outputs"]["rows"] == 15000
