"""The optional parts of the control plane: a kwok fake node and the real KubeRay operator.

`start_kwok` runs kwok with its fast node/pod stages and creates one fake
node: kube-scheduler binds pods to it and kwok turns them Running without any
container runtime. `start_kuberay_operator` runs the real KubeRay operator
out-of-cluster against the control plane's admin kubeconfig. Both are
processes of the control plane (`ControlPlane.stop_component("kwok")` /
`("kuberay-operator")` end them) and fail early, with the log tail, if the
process dies while being waited for.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

from tests.support.controlplane.processes import free_ports, http_ok

if TYPE_CHECKING:
    from tests.support.controlplane.cluster import ControlPlane

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def node_ready(cp: ControlPlane, name: str) -> bool:
    res = cp.kubectl("get", "node", name, "-o", "json", check=False)
    if res.returncode != 0:
        return False
    conditions = json.loads(res.stdout).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def start_kwok(cp: ControlPlane, node_name: str = "kwok-node-0", timeout: float = 60.0) -> str:
    """Run kwok and create one fake node; return the node name.

    kwok does not schedule: kube-scheduler (always started) binds pods to
    the fake node, and kwok's stages then mark them Running/Ready and
    heartbeat the node lease so the node-lifecycle controller keeps it Ready.
    The node has no taint, so ordinary pods (e.g. KubeRay's) land on it.
    """
    stages = cp.toolchain.kwok_stages
    stage_files = [
        *sorted((stages / "node" / "fast").glob("*.yaml")),
        *sorted((stages / "node" / "heartbeat-with-lease").glob("*.yaml")),
        *sorted((stages / "pod" / "fast").glob("*.yaml")),
    ]
    # kustomization.yaml files are not Stage objects.
    stage_files = [p for p in stage_files if p.name != "kustomization.yaml"]
    args = [
        f"--kubeconfig={cp.kubeconfig}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        "--node-lease-duration-seconds=40",
        *(f"--config={p}" for p in stage_files),
    ]
    # HOME points into the temp dir so kwok never picks up a ~/.kwok/kwok.yaml.
    cp.components.spawn(
        "kwok",
        [str(cp.toolchain.binary("kwok")), *args],
        env={**os.environ, "HOME": str(cp.workdir)},
    )
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
        },
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(node))
    deadline = time.monotonic() + timeout
    cp.components.wait(
        f"kwok node {node_name} Ready",
        lambda: node_ready(cp, node_name),
        deadline,
        watch=("kwok",),
    )
    return node_name


def start_kuberay_operator(cp: ControlPlane, timeout: float = 60.0) -> None:
    """Run the real KubeRay operator out-of-cluster against this cluster.

    KubeRay defines no kubeconfig flag itself (controller-runtime adds
    -kubeconfig); the KUBECONFIG environment variable is what both honour.
    Metrics and probes bind to free loopback ports, leader election is off
    (one replica, no Lease needed).
    """
    metrics_port, probe_port = free_ports(2)
    args = [
        f"--metrics-addr=127.0.0.1:{metrics_port}",
        f"--health-probe-bind-address=127.0.0.1:{probe_port}",
        "--enable-leader-election=false",
        "--log-stdout-encoder=console",
    ]
    cp.components.spawn(
        "kuberay-operator",
        [str(cp.toolchain.binary("kuberay-operator")), *args],
        env=cp.env,
    )
    cp.components.wait(
        "KubeRay operator /readyz",
        lambda: http_ok(f"http://127.0.0.1:{probe_port}/readyz"),
        time.monotonic() + timeout,
        watch=("kuberay-operator",),
    )
