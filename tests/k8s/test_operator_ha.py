"""Two operator replicas with Kopf peering on the real kube-apiserver: one works, the other takes over.

This is what the chart runs with `operator.replicas: 2` and
`operator.peering.enabled: true`: every process gets `--peering NAME` and no
`--priority`, so each picks a random one, and the pod name as its peering
identity (`POD_ID`). Here the two replicas are `python -m vectorpipe_operator`
processes scoped to the test's namespace, so Kopf peers through a
`KopfPeering` there (the CRD is the chart's static crds/kopf.dev_*.yaml).

The test reads which replica is active from the peering object itself (the
live peer with the highest priority), checks that only that one handled a new
pipeline, kills it with SIGKILL (a crash: no goodbye in the peering object, so
the standby waits out the dead peer's keep-alive lifetime, 60 s), and then
drives the pipeline on through both stages, playing KubeRay and the
slurm-bridge as tests/k8s/test_operator.py does: the survivor must take over,
and the pipeline must still have exactly one RayJob, one ConfigMap and one
SlurmJob (a takeover re-runs the resume handler; it must adopt, not duplicate).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane, free_ports
from tests.support.operator import Cluster, Operator, commit_manifest, pipeline
from tests.support.processes import http_ok

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PEERING_CRDS = sorted((REPO / "charts" / "vectorpipe" / "crds").glob("kopf.dev_*.yaml"))
PEERING = "vectorpipe-operator"
# Kopf's default keep-alive lifetime (settings.peering.lifetime) is 60 s: a killed
# peer counts as alive that long. Takeover must happen within it plus some slack.
TAKEOVER = 150.0


@dataclass
class Replica:
    """One operator process and its peering identity (what the chart sets from the pod name)."""

    identity: str
    op: Operator

    def log(self) -> str:
        return self.op.log.read_text(errors="replace")

    def working(self) -> bool:
        """Kopf's own word: the last peering verdict in the log is "Resuming operations".

        A replica that starts while a higher one runs is paused from the start and
        never says so; one that ran first says "Pausing operations" when outranked."""
        log = self.log()
        return log.rfind("Resuming operations") > log.rfind("Pausing operations")


def start_replica(k8s: ControlPlane, namespace: str, identity: str, log: Path) -> Replica:
    """`python -m vectorpipe_operator` as the chart starts it with peering enabled."""
    live_port, metrics_port = free_ports(2)
    liveness = f"http://127.0.0.1:{live_port}/healthz"
    cmd = [
        sys.executable, "-m", "vectorpipe_operator",
        "--namespace", namespace,
        "--peering", PEERING,
        "--liveness", liveness,
        "--metrics-port", str(metrics_port), "--metrics-addr", "127.0.0.1",
        "--log-format", "json", "--verbose",
    ]  # fmt: skip
    env = {**k8s.env, "POD_ID": identity}
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    op = Operator(proc, log, liveness, f"http://127.0.0.1:{metrics_port}/metrics")
    deadline = time.monotonic() + 60
    while not http_ok(liveness):
        if proc.poll() is not None or time.monotonic() > deadline:
            op.stop()
            raise AssertionError(f"operator {identity} did not become live:\n{op.tail()}")
        time.sleep(0.3)
    return Replica(identity, op)


@pytest.fixture
def peered(crds: ControlPlane, namespace: str) -> ControlPlane:
    """The session cluster with our CRDs, Kopf's peering CRDs and the peering object."""
    crds.apply_crds(PEERING_CRDS)
    obj = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    crds.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))
    return crds


@pytest.fixture
def replicas(peered: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        for identity in ("operator-a", "operator-b"):
            log = tmp_path / f"{identity}.log"
            started.append(start_replica(peered, namespace, identity, log))
        yield started
    finally:
        for r in started:
            r.op.stop()
        for r in started:
            # Shown by pytest only when the test failed.
            print(f"----- {r.identity} log (tail) -----\n{r.op.tail(150)}")


def peers(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """The peering object's status: identity -> {priority, lifetime, lastseen}."""
    obj = cluster.must("kopfpeering", PEERING)
    status: dict[str, dict[str, Any]] = obj.get("status") or {}
    return status


def children(cluster: Cluster, kind: str, owner_uid: str) -> list[str]:
    """Names of the objects of `kind` in the namespace that the pipeline owns."""
    res = cluster.k8s.kubectl("get", kind, "-n", cluster.ns, "-o", "json")
    return sorted(
        o["metadata"]["name"]
        for o in json.loads(res.stdout)["items"]
        if any(r["uid"] == owner_uid for r in o["metadata"].get("ownerReferences", []))
    )


def test_standby_takes_over_when_the_active_operator_dies(
    replicas: list[Replica], peered: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster = Cluster(peered, namespace)
    by_id = {r.identity: r for r in replicas}

    # Both replicas keep themselves alive in the peering object, with distinct random
    # priorities (equal ones would make Kopf pause both).
    status = cluster.wait(
        "both replicas in the peering object",
        lambda: (lambda s: s if set(s) == set(by_id) else None)(peers(cluster)),
    )
    priorities = {ident: int(info["priority"]) for ident, info in status.items()}
    assert len(set(priorities.values())) == 2, f"replicas tie: {priorities}"
    active_id = max(priorities, key=lambda i: priorities[i])
    standby_id = min(priorities, key=lambda i: priorities[i])
    active, standby = by_id[active_id], by_id[standby_id]
    cluster.wait(
        f"{active_id} (priority {priorities[active_id]}) working, {standby_id} paused",
        lambda: active.working() and not standby.working(),
    )

    # A new pipeline is handled by the active replica only.
    out = tmp_path / "out"
    uid = cluster.create(pipeline("ha1", out))["metadata"]["uid"]
    cluster.wait("RayJob ha1-etl", lambda: cluster.get("rayjob", "ha1-etl"))
    cluster.wait_phase("ha1", "Pending")
    cluster.wait(
        "the create handler to finish", lambda: "Handler 'create' succeeded" in active.log()
    )
    assert '"ha1"' in active.log()
    assert '"ha1"' not in standby.log(), f"the standby {standby_id} handled the pipeline too"

    # The active replica crashes. What happens next must be the standby's doing.
    active.op.kill()
    killed_at = time.monotonic()
    cluster.set_status(
        "rayjob", "ha1-etl",
        {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "startTime": "2025-01-01T00:00:00Z"},
    )  # fmt: skip
    cluster.wait_phase("ha1", "Embedding", timeout=TAKEOVER)
    took = time.monotonic() - killed_at
    assert standby.working() and '"ha1"' in standby.log()
    # The dead peer is cleaned out of the peering object by the survivor.
    cluster.wait(
        f"{active_id} gone from the peering object", lambda: active_id not in peers(cluster)
    )
    assert standby_id in peers(cluster)

    # The survivor drives the pipeline through both stages.
    commit_manifest(out, rows=1000)
    cluster.set_status(
        "rayjob", "ha1-etl",
        {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "endTime": "2025-01-01T00:10:00Z"},
    )  # fmt: skip
    cluster.wait("SlurmJob ha1-kmeans", lambda: cluster.get("slurmjob", "ha1-kmeans"))
    cluster.wait_phase("ha1", "Clustering")
    cluster.set_status(
        "slurmjob", "ha1-kmeans",
        {"phase": "Succeeded", "jobId": 7, "state": "COMPLETED", "exitCode": 0},
    )  # fmt: skip
    done = cluster.wait_phase("ha1", "Succeeded")
    assert done["status"]["outputs"]["rows"] == 1000

    # One of each child, whoever created it: the takeover adopted, never duplicated.
    assert children(cluster, "rayjobs", uid) == ["ha1-etl"]
    assert children(cluster, "configmaps", uid) == ["ha1-pipeline"]
    assert children(cluster, "slurmjobs", uid) == ["ha1-kmeans"]
    assert standby.op.proc.poll() is None, "the survivor is still running"
    print(f"takeover after {took:.1f} s")
