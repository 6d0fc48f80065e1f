"""Faults 1, 5 and 11 against the operator on the real kube-apiserver.

The operator runs as `python -m vectorpipe_operator`; the test plays KubeRay's
and the bridge's parts by writing child statuses through the status
subresource (as tests/k8s/test_operator.py does). Faults are real: the
operator process exits right after creating a child, before its status write
(started through tests.support.crashing, whose hook `os._exit`s like a SIGKILL
would); the kube-apiserver process is stopped and started again while
pipelines are mid-stage; users edit a running pipeline's spec with patch,
apply and replace. Every test ends by counting children: exactly one RayJob
and one SlurmJob per pipeline, with the UIDs they had before the fault.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controlplane import ControlPlane
from tests.support.crashing import CRASH_EXIT_CODE
from tests.support.operator import (
    Cluster,
    Operator,
    commit_manifest,
    condition,
    pipeline,
    start_operator,
)

pytestmark = [pytest.mark.faults, pytest.mark.k8s]

WAIT = 120.0


def children(cluster: Cluster) -> list[tuple[str, str, str]]:
    """(kind, name, uid) of every RayJob and SlurmJob in the namespace."""
    res = cluster.k8s.kubectl("get", "rayjobs,slurmjobs", "-n", cluster.ns, "-o", "json")
    items = json.loads(res.stdout)["items"]
    return sorted((i["kind"], i["metadata"]["name"], i["metadata"]["uid"]) for i in items)


def crashing_operator(crds: ControlPlane, namespace: str, log: Path, kind: str) -> Operator:
    return start_operator(crds, namespace, log, crash_after_create=kind)


def test_operator_dying_right_after_each_create_never_creates_twice(
    crds: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster = Cluster(crds, namespace)
    out = tmp_path / "out"
    logs: list[Operator] = []
    try:
        # Crash 1: the RayJob exists, the pipeline's status does not know it.
        op = crashing_operator(crds, namespace, tmp_path / "op-1.log", "RayJob")
        logs.append(op)
        cluster.create(pipeline("c1", out))
        assert op.proc.wait(WAIT) == CRASH_EXIT_CODE
        rayjob = cluster.must("rayjob", "c1-etl")
        assert not (cluster.must("vectorpipeline", "c1").get("status") or {}).get("ray")

        # Crash 2: the restarted operator adopts the RayJob; stage 1 ends; it creates the
        # SlurmJob and dies again before recording it.
        op = crashing_operator(crds, namespace, tmp_path / "op-2.log", "SlurmJob")
        logs.append(op)
        p = cluster.wait_phase("c1", "Pending", timeout=WAIT)
        assert p["status"]["ray"]["rayJob"] == "c1-etl"
        commit_manifest(out, rows=321, shards=2)
        cluster.set_status(
            "rayjob", "c1-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
        )
        assert op.proc.wait(WAIT) == CRASH_EXIT_CODE
        slurmjob = cluster.must("slurmjob", "c1-kmeans")
        assert not (cluster.must("vectorpipeline", "c1").get("status") or {}).get("slurm")

        # A healthy operator finishes the pipeline with the children that already exist.
        op = start_operator(crds, namespace, tmp_path / "op-3.log")
        logs.append(op)
        p = cluster.wait_phase("c1", "Clustering", timeout=WAIT)
        assert p["status"]["outputs"]["rows"] == 321
        cluster.set_status(
            "slurmjob", "c1-kmeans",
            {"phase": "Succeeded", "jobId": 7, "state": "COMPLETED", "exitCode": 0},
        )  # fmt: skip
        p = cluster.wait_phase("c1", "Succeeded", timeout=WAIT)
        assert condition(p, "Ready")["status"] == "True"
        assert children(cluster) == [
            ("RayJob", "c1-etl", rayjob["metadata"]["uid"]),
            ("SlurmJob", "c1-kmeans", slurmjob["metadata"]["uid"]),
        ]
        # No operator ever announced a second creation (the crashed ones may not have
        # got their Event out at all).
        created = [e["message"] for e in cluster.events("c1") if e["reason"] == "Created"]
        for child in ("RayJob c1-etl", "SlurmJob c1-kmeans"):
            assert (
                sum(
                    e.get("count", 1)
                    for e in cluster.events("c1")
                    if e["message"] == f"created {child}"
                )
                <= 1
            ), created
    finally:
        for op in logs:
            op.stop()
            print(f"----- {op.log.name} (tail) -----\n{op.tail(60)}")


def test_apiserver_restarted_mid_pipeline_operator_reconnects_without_duplicates(
    crds: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster = Cluster(crds, namespace)
    out = tmp_path / "out"
    op = start_operator(crds, namespace, tmp_path / "operator.log")
    try:
        cluster.create(pipeline("a1", out))
        cluster.wait_phase("a1", "Pending", timeout=WAIT)
        rayjob = cluster.must("rayjob", "a1-etl")

        # Stage 1 runs while the API server is down and comes back.
        crds.restart_apiserver()
        cluster.set_status(
            "rayjob", "a1-etl",
            {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING",
             "startTime": "2025-01-01T00:00:00Z"},
        )  # fmt: skip
        # Only a reconnected watch can see this change.
        cluster.wait_phase("a1", "Embedding", timeout=WAIT)
        commit_manifest(out, rows=500, shards=2)
        cluster.set_status(
            "rayjob", "a1-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
        )
        cluster.wait_phase("a1", "Clustering", timeout=WAIT)
        slurmjob = cluster.must("slurmjob", "a1-kmeans")

        # Second outage during stage 2; a second pipeline is created right after it.
        crds.restart_apiserver(down_for=8.0)
        cluster.create(pipeline("a2", tmp_path / "out2"))
        cluster.set_status(
            "slurmjob", "a1-kmeans",
            {"phase": "Succeeded", "jobId": 9, "state": "COMPLETED", "exitCode": 0},
        )  # fmt: skip
        p = cluster.wait_phase("a1", "Succeeded", timeout=WAIT)
        assert p["status"]["outputs"]["rows"] == 500
        cluster.wait_phase("a2", "Pending", timeout=WAIT)
        assert op.proc.poll() is None, "the operator exited instead of reconnecting"
        uids = {(k, n): u for k, n, u in children(cluster)}
        assert uids == {
            ("RayJob", "a1-etl"): rayjob["metadata"]["uid"],
            ("SlurmJob", "a1-kmeans"): slurmjob["metadata"]["uid"],
            ("RayJob", "a2-etl"): uids.get(("RayJob", "a2-etl")),
        }
    finally:
        op.stop()
        print(f"----- operator log (tail) -----\n{op.tail(120)}")


def _edited(obj: dict[str, Any], shards: int) -> dict[str, Any]:
    body = {k: obj[k] for k in ("apiVersion", "kind", "spec")}
    body["metadata"] = {"name": obj["metadata"]["name"]}
    body["spec"] = json.loads(json.dumps(obj["spec"]))
    body["spec"]["output"]["shards"] = shards
    return body


def test_spec_edits_of_a_running_pipeline_are_refused_by_the_api_server(
    crds: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster = Cluster(crds, namespace)
    out = tmp_path / "out"
    op = start_operator(crds, namespace, tmp_path / "operator.log")
    message = "spec is immutable during a run; change spec.runId as well to start a new run"
    try:
        cluster.create(pipeline("e1", out))
        cluster.wait("RayJob e1-etl", lambda: cluster.get("rayjob", "e1-etl"))
        cluster.set_status(
            "rayjob", "e1-etl", {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}
        )
        before = cluster.wait_phase("e1", "Embedding", timeout=WAIT)
        rayjob = cluster.must("rayjob", "e1-etl")

        edited = _edited(before, shards=16)
        path = tmp_path / "edited.yaml"
        path.write_text(yaml.safe_dump(edited))
        attempts = {
            "patch": ("patch", "vp", "e1", "--type=merge", "-p", '{"spec":{"output":{"shards":16}}}'),
            "apply": ("apply", "-f", str(path)),
            "apply-server-side": ("apply", "--server-side", "--force-conflicts", "-f", str(path)),
            "replace": ("replace", "-f", str(path)),
            "edit-input": ("patch", "vp", "e1", "--type=json",
                           "-p", '[{"op":"replace","path":"/spec/input/uri","value":"/elsewhere/"}]'),
        }  # fmt: skip
        for what, args in attempts.items():
            res = crds.kubectl(*args, "-n", namespace, check=False)
            assert res.returncode != 0, f"{what} was accepted"
            assert message in res.stderr, (what, res.stderr)

        after = cluster.must("vectorpipeline", "e1")
        assert after["spec"] == before["spec"]
        assert after["metadata"]["generation"] == 1
        assert cluster.must("rayjob", "e1-etl")["spec"] == rayjob["spec"]
        # The running pipeline is unaffected and finishes as first specified.
        commit_manifest(out, rows=40, shards=8)
        cluster.set_status(
            "rayjob", "e1-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
        )
        p = cluster.wait_phase("e1", "Clustering", timeout=WAIT)
        assert p["status"]["outputs"]["shards"] == 8
        # The child SlurmJob is immutable too (the bridge may already have submitted it).
        res = crds.kubectl(
            "patch", "slurmjob", "e1-kmeans", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"nodes":4}}', check=False,
        )  # fmt: skip
        assert "spec is immutable once a SlurmJob is created" in res.stderr, res.stderr
        # Metadata stays editable: the documented way to annotate or label a run.
        crds.kubectl("label", "vp", "e1", "-n", namespace, "team=genomics")
    finally:
        op.stop()
        print(f"----- operator log (tail) -----\n{op.tail(80)}")
