"""Proves the test control plane is a real Kubernetes, not a stub.

Each test checks one property other suites rely on: the API server reports the
pinned version (helm's kubeVersion checks read it), RBAC is actually enforced,
KubeRay's CRDs are served, the controller-manager's garbage collector honours
owner references, and (slow) the real KubeRay operator expands a RayJob into a
RayCluster whose head pod kwok turns Running.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.k8s


def test_version_is_pinned(k8s: ControlPlane) -> None:
    expected = k8s.toolchain.versions["K8S_VERSION"]
    version = k8s.version()
    assert version["gitVersion"] == expected
    assert version["major"] == "1"
    assert version["minor"] == expected.split(".")[1]
    # kubectl is stamped the same way, so its own version checks see the truth too.
    client = json.loads(k8s.kubectl("version", "-o", "json").stdout)
    assert client["clientVersion"]["gitVersion"] == expected
    assert client["serverVersion"]["gitVersion"] == expected


def test_rbac_is_enforced(k8s: ControlPlane, namespace: str) -> None:
    subject = f"system:serviceaccount:{namespace}:default"

    def can_list_secrets() -> str:
        res = k8s.kubectl(
            "auth", "can-i", "list", "secrets", "-n", namespace, f"--as={subject}", check=False
        )
        return res.stdout.strip()

    assert can_list_secrets() == "no"
    k8s.kubectl(
        "create", "role", "secret-reader", "-n", namespace, "--verb=get,list", "--resource=secrets"
    )
    k8s.kubectl(
        "create",
        "rolebinding",
        "secret-reader",
        "-n",
        namespace,
        "--role=secret-reader",
        f"--serviceaccount={namespace}:default",
    )
    assert can_list_secrets() == "yes"
    # The grant is namespaced: other namespaces stay closed.
    res = k8s.kubectl(
        "auth", "can-i", "list", "secrets", "-n", "default", f"--as={subject}", check=False
    )
    assert res.stdout.strip() == "no"


def test_kuberay_crds_established(k8s: ControlPlane) -> None:
    for crd in ("rayjobs.ray.io", "rayclusters.ray.io", "rayservices.ray.io"):
        obj = json.loads(k8s.kubectl("get", "crd", crd, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        assert conditions.get("Established") == "True", (crd, conditions)
    # Served, not just stored: the new resource type is listable.
    assert k8s.kubectl("get", "rayjobs.ray.io", "-A").returncode == 0


def test_owner_reference_garbage_collection(k8s: ControlPlane, namespace: str) -> None:
    k8s.kubectl("create", "configmap", "owner", "-n", namespace, "--from-literal=a=b")
    owner_uid = k8s.kubectl(
        "get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
        "data": {"c": "d"},
    }
    k8s.kubectl("create", "-f", "-", input=json.dumps(child))
    # Background deletion: the API server removes the owner at once and only
    # the controller-manager's garbage collector can remove the child.
    k8s.kubectl("delete", "configmap", "owner", "-n", namespace, "--cascade=background")
    k8s.wait_for(
        "child ConfigMap garbage-collected",
        lambda: (
            k8s.kubectl("get", "configmap", "child", "-n", namespace, check=False).returncode != 0
        ),
        timeout=60,
    )
    assert (
        "NotFound" in k8s.kubectl("get", "configmap", "child", "-n", namespace, check=False).stderr
    )


MINIMAL_RAYJOB = {
    "apiVersion": "ray.io/v1",
    "kind": "RayJob",
    "metadata": {"name": "hello"},
    "spec": {
        "entrypoint": "python -c 'print(42)'",
        "shutdownAfterJobFinishes": False,
        "rayClusterSpec": {
            "rayVersion": "2.46.0",
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "ray-head",
                                "image": "rayproject/ray:2.46.0",
                                "resources": {
                                    "requests": {"cpu": "1", "memory": "2Gi"},
                                    "limits": {"cpu": "1", "memory": "2Gi"},
                                },
                            }
                        ]
                    }
                },
            },
        },
    },
}


@pytest.mark.slow
def test_kuberay_expands_rayjob_into_running_head_pod(
    kuberay: ControlPlane, namespace: str
) -> None:
    k8s = kuberay
    rayjob = {**MINIMAL_RAYJOB, "metadata": {"name": "hello", "namespace": namespace}}
    k8s.kubectl("create", "-f", "-", input=json.dumps(rayjob))

    def items(*args: str) -> list[dict[str, Any]]:
        out = k8s.kubectl("get", *args, "-n", namespace, "-o", "json").stdout
        found: list[dict[str, Any]] = json.loads(out)["items"]
        return found

    k8s.wait_for(
        "KubeRay to create a RayCluster for the RayJob",
        lambda: len(items("rayclusters.ray.io")) == 1,
        timeout=90,
    )
    cluster = items("rayclusters.ray.io")[0]
    owners = cluster["metadata"].get("ownerReferences", [])
    assert [(o["kind"], o["name"]) for o in owners] == [("RayJob", "hello")]

    head_selector = ("pods", "-l", "ray.io/node-type=head")

    def head_running() -> bool:
        pods = items(*head_selector)
        return len(pods) == 1 and pods[0].get("status", {}).get("phase") == "Running"

    # Running needs every real piece: KubeRay created the pod, kube-scheduler
    # bound it to the kwok node, and kwok played the pod-ready stage.
    k8s.wait_for("head pod scheduled on the kwok node and Running", head_running, timeout=120)
    pod = items(*head_selector)[0]
    assert pod["spec"]["nodeName"] == "kwok-node-0"
    assert pod["spec"]["containers"][0]["image"] == "rayproject/ray:2.46.0"
    assert pod["metadata"]["labels"]["ray.io/cluster"] == cluster["metadata"]["name"]
    rayjob_status = json.loads(
        k8s.kubectl("get", "rayjob", "hello", "-n", namespace, "-o", "json").stdout
    ).get("status", {})
    assert rayjob_status.get("rayClusterName") == cluster["metadata"]["name"]
