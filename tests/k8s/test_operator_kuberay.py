"""Our RayJob is valid for KubeRay itself, not only for its schema.

The real KubeRay operator (built from its Go module) runs against the test
API server with a kwok fake node: it must accept the RayJob our operator
builds, expand it into a RayCluster, and create head and worker pods that
carry our image, resources and the pipeline ConfigMap mount; the scheduler
binds them to the kwok node and kwok marks them Running. No Ray process
exists behind those pods, so the job never finishes here; the pipeline must
nevertheless follow KubeRay's status into Embedding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.operator import CRDS, Cluster, start_operator

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


@pytest.fixture(scope="module")
def crds_and_kuberay(kuberay: ControlPlane) -> ControlPlane:
    kuberay.apply_crds(CRDS)
    return kuberay


def pods(cluster: Cluster, selector: str) -> list[dict[str, Any]]:
    out = cluster.k8s.kubectl("get", "pods", "-n", cluster.ns, "-l", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_kuberay_expands_our_rayjob_into_running_pods(
    crds_and_kuberay: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster = Cluster(crds_and_kuberay, namespace)
    body = {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": "kr"},
        "spec": {
            "input": {"uri": "/fsx/reads/"},
            "output": {"uri": "/fsx/runs/kr/"},
            "ray": {
                "image": "example.com/vectorpipe/ray-worker:test",
                "head": {"cpu": "1", "memory": "2Gi"},
                "workers": {"replicas": 1, "cpu": "2", "memory": "3Gi"},
            },
        },
    }
    op = start_operator(crds_and_kuberay, namespace, tmp_path / "operator.log")
    try:
        cluster.create(body)
        rc = cluster.wait(
            "KubeRay to create the RayCluster",
            lambda: json.loads(
                cluster.k8s.kubectl("get", "rayclusters", "-n", namespace, "-o", "json").stdout
            )["items"],
            timeout=120,
        )[0]
        assert [(o["kind"], o["name"]) for o in rc["metadata"]["ownerReferences"]] == [
            ("RayJob", "kr-etl")
        ]

        def running(selector: str) -> list[dict[str, Any]]:
            found = pods(cluster, selector)
            return [p for p in found if p.get("status", {}).get("phase") == "Running"]

        (head,) = cluster.wait(
            "head pod Running", lambda: running("ray.io/node-type=head"), timeout=180
        )
        (worker,) = cluster.wait(
            "worker pod Running", lambda: running("ray.io/node-type=worker"), timeout=180
        )
        assert head["spec"]["nodeName"] == "kwok-node-0"
        for pod, cpu, mem in ((head, "1", "2Gi"), (worker, "2", "3Gi")):
            container = pod["spec"]["containers"][0]
            assert container["image"] == "example.com/vectorpipe/ray-worker:test"
            assert container["resources"]["limits"] == {"cpu": cpu, "memory": mem}
            assert {"name": "pipeline", "mountPath": "/etc/vectorpipe", "readOnly": True} in (
                container["volumeMounts"]
            )
            assert {
                "name": "pipeline",
                "configMap": {"name": "kr-pipeline", "defaultMode": 420},
            } in (pod["spec"]["volumes"])
        p = cluster.wait_phase("kr", "Embedding", timeout=120)
        ray = p["status"]["ray"]
        assert ray["jobDeploymentStatus"] in ("Initializing", "Running"), ray
        rayjob = cluster.must("rayjob", "kr-etl")
        assert rayjob["status"]["jobDeploymentStatus"] != "ValidationFailed", rayjob["status"]
    finally:
        op.stop()
        print(f"----- operator log (tail) -----\n{op.tail(80)}")
