"""The GitOps way to re-run a pipeline, as Argo CD's health check sees it.

A VectorPipeline's spec is frozen during a run, so an edit in Git alone is
refused by the API server (tests/k8s/test_crd_admission.py) and an automated
sync would fail until its retry limit. The documented way (docs/gitops.md) is
to change `spec.runId` in the same commit: the API server admits it, the
operator ends the previous run and starts a new one. Here every step of that
walk goes through the real operator's reconcile (over the typed in-memory API)
and the object it leaves is judged by the health Lua Argo CD runs: Healthy
after the first run, Progressing from the moment Git's edit lands (the
operator has not observed the new generation yet) through the new run, and
Healthy again only when the new run succeeded.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import kopf

from tests.support.argocd import HEALTH_DIR, RunHealth
from tests.support.fakes import FakeOperatorKube
from tests.support.operator import commit_manifest
from vectorpipe_operator import reconcile as rec

NS, NAME, UID = "team-a", "gut", "uid-gut"
SCRIPT = HEALTH_DIR / "vectorpipeline.lua"


def pipeline(out: Path) -> dict[str, Any]:
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
        "spec": {
            "runId": "a",
            "input": {"uri": "/reads/"},
            "output": {"uri": f"{out}/"},
            "hpc": {"app": {"clusters": 5}},
        },
    }


def commit(out: Path, run: str) -> None:
    commit_manifest(out, rows=10, shards=1, run=run)


def reconcile(kube: FakeOperatorKube) -> None:
    ctx = rec.Context(kube, trigger="test", clock=lambda: "2026-01-01T00:00:00Z")
    # Kopf's Temporary/PermanentError only tell Kopf when to come back;
    # the status the pass wrote is what Argo CD sees.
    with contextlib.suppress(kopf.TemporaryError, kopf.PermanentError):
        rec.reconcile(ctx, NS, NAME)


def finish_run(kube: FakeOperatorKube, out: Path, run_id: str) -> None:
    """Stage 1 commits, KubeRay reports success, the bridge reports success."""
    reconcile(kube)
    commit(out, f"{UID}/{run_id}")
    kube.set_child_status(
        "RayJob",
        f"{NAME}-{run_id}-etl",
        {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"},
    )
    reconcile(kube)
    kube.set_child_status("SlurmJob", f"{NAME}-{run_id}-kmeans", {"phase": "Succeeded"})
    reconcile(kube)


def health(run_health: RunHealth, kube: FakeOperatorKube) -> tuple[str, str]:
    result = run_health(SCRIPT, copy.deepcopy(kube.pipeline))
    return str(result["status"]), str(result.get("message", ""))


def test_a_new_run_id_in_git_reads_progressing_until_the_new_run_succeeds(
    run_health: RunHealth, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    kube = FakeOperatorKube(pipeline(out))
    finish_run(kube, out, "a")
    assert kube.pipeline["status"]["phase"] == "Succeeded"
    assert health(run_health, kube)[0] == "Healthy"

    # Git's edit lands: a new K and a new runId, one commit, one sync.
    kube.pipeline["spec"]["hpc"]["app"]["clusters"] = 9
    kube.pipeline["spec"]["runId"] = "b"
    kube.pipeline["metadata"]["generation"] = 2
    status, message = health(run_health, kube)
    assert (status, message) == (
        "Progressing",
        "Waiting for the operator to observe generation 2 (observed 1)",
    )

    reconcile(kube)  # the operator ends run a and starts run b
    assert kube.pipeline["status"]["runId"] == "b"
    assert health(run_health, kube)[0] == "Progressing"
    assert ("RayJob", f"{NAME}-a-etl") in kube.deleted

    finish_run(kube, out, "b")
    assert health(run_health, kube)[0] == "Healthy"
    command = kube.objects[("SlurmJob", f"{NAME}-b-kmeans")]["spec"]["command"]
    assert command[command.index("--clusters") + 1] == "9"


def test_a_failed_run_is_degraded_and_a_new_run_id_recovers_it(
    run_health: RunHealth, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    kube = FakeOperatorKube(pipeline(out))
    reconcile(kube)
    kube.set_child_status(
        "RayJob", f"{NAME}-a-etl", {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED"}
    )
    reconcile(kube)
    assert health(run_health, kube)[0] == "Degraded"
    kube.pipeline["spec"]["runId"] = "a2"
    kube.pipeline["metadata"]["generation"] = 2
    assert health(run_health, kube)[0] == "Progressing"
    finish_run(kube, out, "a2")
    assert health(run_health, kube)[0] == "Healthy"
