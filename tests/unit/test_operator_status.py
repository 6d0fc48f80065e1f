"""Pure status computation: every phase, every condition reason, the write-only-if-changed rule."""

from __future__ import annotations

from typing import Any

import pytest

from vectorpipe_api.pipeline_status import VectorPipelineStatus
from vectorpipe_kopf.errors import Problem
from vectorpipe_operator.status import (
    ManifestView,
    Observed,
    RayJobView,
    SlurmJobView,
    compute_status,
    condition,
    derive_phase,
    is_terminal,
    manifest_from_status,
)

OUT = "s3://runs/r42/"
T0, T1, T2 = "2025-01-01T00:00:00Z", "2025-01-01T00:05:00Z", "2025-01-01T01:00:00Z"
MANIFEST = ManifestView(uri=OUT + "_manifest.json", rows=1000, shards=8, dim=136, format="parquet")


def rayjob(deploy: str = "", job: str = "", **kw: Any) -> RayJobView:
    return RayJobView(name="r42-etl", deployment_status=deploy, job_status=job, **kw)


def slurmjob(phase: str = "", **kw: Any) -> SlurmJobView:
    return SlurmJobView(name="r42-kmeans", phase=phase, **kw)


def compute(obs: Observed, old: dict[str, Any] | None = None, now: str = T1) -> dict[str, Any]:
    status = compute_status(generation=1, old=old or {}, output_uri=OUT, observed=obs, now=now)
    # Every status written validates against the typed model the CRD is generated from.
    VectorPipelineStatus.model_validate(status)
    return status


def reasons(status: dict[str, Any]) -> tuple[str, str, str]:
    return tuple(  # type: ignore[return-value]
        f"{condition(status, t)['status']}/{condition(status, t)['reason']}"
        for t in ("EmbeddingComplete", "ClusteringComplete", "Ready")
    )


@pytest.mark.parametrize(
    ("obs", "phase", "conds"),
    [
        (
            Observed(),
            "Pending",
            ("False/RayJobPending", "False/WaitingForEmbedding", "False/Pending"),
        ),
        (
            Observed(rayjob=rayjob()),
            "Pending",
            ("False/RayJobCreated", "False/WaitingForEmbedding", "False/Pending"),
        ),
        (
            Observed(rayjob=rayjob("Initializing")),
            "Embedding",
            ("False/RayJobInitializing", "False/WaitingForEmbedding", "False/Embedding"),
        ),
        (
            Observed(rayjob=rayjob("Running", "RUNNING")),
            "Embedding",
            ("False/RayJobRunning", "False/WaitingForEmbedding", "False/Embedding"),
        ),
        (
            Observed(rayjob=rayjob("Retrying", "FAILED")),
            "Embedding",
            ("False/RayJobRetrying", "False/WaitingForEmbedding", "False/Embedding"),
        ),
        (
            # SUCCEEDED but the submitter has not finished: KubeRay keeps Running.
            Observed(rayjob=rayjob("Running", "SUCCEEDED")),
            "Embedding",
            ("False/RayJobRunning", "False/WaitingForEmbedding", "False/Embedding"),
        ),
        (
            Observed(
                rayjob=rayjob("Complete", "SUCCEEDED"),
                waiting=Problem("ManifestNotVisible", "no manifest yet"),
            ),
            "Embedding",
            ("False/ManifestPending", "False/WaitingForEmbedding", "False/ManifestNotVisible"),
        ),
        (
            Observed(rayjob=rayjob("Failed", "FAILED", reason="AppFailed", message="boom")),
            "Failed",
            ("False/RayJobFailed", "False/NotStarted", "False/RayJobFailed"),
        ),
        (
            Observed(rayjob=rayjob("Complete", "STOPPED")),
            "Failed",
            ("False/RayJobStopped", "False/NotStarted", "False/RayJobStopped"),
        ),
        (
            Observed(rayjob=rayjob("Failed", "RUNNING", reason="DeadlineExceeded")),
            "Failed",
            ("False/RayJobDeadlineExceeded", "False/NotStarted", "False/RayJobDeadlineExceeded"),
        ),
        (
            Observed(rayjob=rayjob("ValidationFailed", message="bad spec")),
            "Failed",
            ("False/RayJobInvalid", "False/NotStarted", "False/RayJobInvalid"),
        ),
        (
            Observed(
                rayjob=rayjob("Complete", "SUCCEEDED"),
                failure=Problem("ManifestInvalid", "shard rows do not sum to rows"),
            ),
            "Failed",
            ("False/ManifestInvalid", "False/NotStarted", "False/ManifestInvalid"),
        ),
        (
            Observed(failure=Problem("InvalidSpec", "s3: bucket not allowed")),
            "Failed",
            ("False/InvalidSpec", "False/NotStarted", "False/InvalidSpec"),
        ),
        (
            Observed(failure=Problem("ChildConflict", "RayJob exists")),
            "Failed",
            ("False/ChildConflict", "False/NotStarted", "False/ChildConflict"),
        ),
        (
            Observed(rayjob=rayjob("Complete", "SUCCEEDED"), manifest=MANIFEST),
            "Clustering",
            ("True/ManifestCommitted", "False/SlurmJobPending", "False/Clustering"),
        ),
        (
            Observed(
                manifest=MANIFEST, waiting=Problem("APIUnavailable", "create SlurmJob: HTTP 503")
            ),
            "Clustering",
            ("True/ManifestCommitted", "False/SlurmJobPending", "False/APIUnavailable"),
        ),
        (
            Observed(manifest=MANIFEST, slurmjob=slurmjob()),
            "Clustering",
            ("True/ManifestCommitted", "False/SlurmJobPending", "False/Clustering"),
        ),
        (
            Observed(manifest=MANIFEST, slurmjob=slurmjob("Submitted", job_id=7)),
            "Clustering",
            ("True/ManifestCommitted", "False/SlurmJobSubmitted", "False/Clustering"),
        ),
        (
            Observed(manifest=MANIFEST, slurmjob=slurmjob("Running", job_id=7, state="RUNNING")),
            "Clustering",
            ("True/ManifestCommitted", "False/SlurmJobRunning", "False/Clustering"),
        ),
        (
            Observed(manifest=MANIFEST, slurmjob=slurmjob("Succeeded", job_id=7, exit_code=0)),
            "Succeeded",
            ("True/ManifestCommitted", "True/SlurmJobSucceeded", "True/Succeeded"),
        ),
        (
            Observed(manifest=MANIFEST, slurmjob=slurmjob("Failed", job_id=7, exit_code=3)),
            "Failed",
            ("True/ManifestCommitted", "False/SlurmJobFailed", "False/SlurmJobFailed"),
        ),
        (
            Observed(manifest=MANIFEST, slurmjob=slurmjob("Cancelled")),
            "Failed",
            ("True/ManifestCommitted", "False/SlurmJobCancelled", "False/SlurmJobCancelled"),
        ),
        (
            Observed(manifest=MANIFEST, failure=Problem("SlurmJobDeleted", "gone")),
            "Failed",
            ("True/ManifestCommitted", "False/SlurmJobDeleted", "False/SlurmJobDeleted"),
        ),
        (
            Observed(manifest=MANIFEST, failure=Problem("RetriesExhausted", "gave up")),
            "Failed",
            ("True/ManifestCommitted", "False/RetriesExhausted", "False/RetriesExhausted"),
        ),
    ],
)
def test_phase_and_conditions(obs: Observed, phase: str, conds: tuple[str, str, str]) -> None:
    status = compute(obs)
    assert status["phase"] == phase
    assert derive_phase(obs)[0] == phase
    assert reasons(status) == conds
    assert status["observedGeneration"] == 1
    assert [c["type"] for c in status["conditions"]] == [
        "EmbeddingComplete",
        "ClusteringComplete",
        "Ready",
    ]
    terminal = phase in ("Succeeded", "Failed")
    assert ("completionTime" in status) is terminal
    assert is_terminal(status, 1) is terminal


def test_failure_messages_name_the_child_and_its_state() -> None:
    status = compute(Observed(rayjob=rayjob("Failed", "FAILED", reason="AppFailed", message="x")))
    assert condition(status, "Ready")["message"] == "RayJob r42-etl Failed/FAILED: AppFailed: x"
    status = compute(
        Observed(
            manifest=MANIFEST, slurmjob=slurmjob("Failed", job_id=9, state="FAILED", exit_code=2)
        )
    )
    msg = condition(status, "Ready")["message"]
    assert msg == "SlurmJob r42-kmeans Failed, job 9, state FAILED, exit code 2"


def test_full_run_keeps_times_and_transition_times() -> None:
    s1 = compute(Observed(rayjob=rayjob()), now=T0)
    assert s1["phase"] == "Pending" and s1["startTime"] == T0
    assert s1["ray"] == {"rayJob": "r42-etl"}

    s2 = compute(Observed(rayjob=rayjob("Running", "RUNNING")), old=s1, now=T1)
    assert s2["phase"] == "Embedding"
    assert s2["startTime"] == T0
    # Still False: the reason moved on, the transition time did not.
    emb = condition(s2, "EmbeddingComplete")
    assert emb["reason"] == "RayJobRunning" and emb["lastTransitionTime"] == T0
    assert s2["ray"]["jobStatus"] == "RUNNING"

    done = rayjob("Complete", "SUCCEEDED", start_time=T0, end_time=T1)
    s3 = compute(Observed(rayjob=done, manifest=MANIFEST, slurmjob=slurmjob()), old=s2, now=T1)
    assert s3["phase"] == "Clustering"
    assert condition(s3, "EmbeddingComplete")["lastTransitionTime"] == T1
    assert s3["outputs"] == {
        "manifest": OUT + "_manifest.json",
        "format": "parquet",
        "shards": 8,
        "rows": 1000,
        "dim": 136,
        "bytes": 0,
        "clustering": OUT + "clustering/",
    }
    assert s3["ray"]["endTime"] == T1
    # Once embedding is complete the RayJob is not read again; its summary stays.
    assert manifest_from_status(s3) == MANIFEST

    s4 = compute(
        Observed(manifest=MANIFEST, slurmjob=slurmjob("Succeeded", job_id=5, exit_code=0)),
        old=s3,
        now=T2,
    )
    assert s4["phase"] == "Succeeded"
    assert s4["ray"] == s3["ray"]
    assert s4["slurm"] == {
        "slurmJob": "r42-kmeans",
        "phase": "Succeeded",
        "jobId": 5,
        "exitCode": 0,
    }
    assert s4["completionTime"] == T2
    assert s4["outputs"]["centroids"] == OUT + "clustering/centroids.parquet"
    assert s4["outputs"]["metrics"] == OUT + "clustering/metrics.json"
    assert condition(s4, "Ready") == {
        "type": "Ready",
        "status": "True",
        "reason": "Succeeded",
        "message": f"clustering results at {OUT}clustering/",
        "lastTransitionTime": T2,
    }


def test_nothing_new_means_the_same_status() -> None:
    obs = Observed(rayjob=rayjob("Running", "RUNNING"))
    first = compute(obs, now=T0)
    # A later pass that sees the same thing computes an identical status: no write.
    assert compute(obs, old=first, now=T2) == first


def test_waiting_then_recovering_moves_only_the_reason() -> None:
    s1 = compute(Observed(manifest=MANIFEST, slurmjob=slurmjob("Running")), now=T0)
    s2 = compute(
        Observed(manifest=MANIFEST, waiting=Problem("APIUnavailable", "HTTP 503")), old=s1, now=T1
    )
    assert s2["phase"] == "Clustering"
    ready = condition(s2, "Ready")
    assert (ready["reason"], ready["message"], ready["lastTransitionTime"]) == (
        "APIUnavailable",
        "HTTP 503",
        T0,
    )
    # The last seen SlurmJob summary is kept while it cannot be read.
    assert s2["slurm"] == s1["slurm"]


def test_views_parse_children_defensively() -> None:
    assert RayJobView.from_object({}) == RayJobView(name="")
    view = RayJobView.from_object(
        {
            "metadata": {"name": "x-etl"},
            "status": {
                "jobStatus": "SUCCEEDED",
                "jobDeploymentStatus": "Complete",
                "message": "m" * 5000,
            },
        }
    )
    assert view.succeeded and not view.failed
    assert len(view.message) == 2000
    sj = SlurmJobView.from_object(
        {"metadata": {"name": "k"}, "status": {"phase": "Running", "jobId": "17", "exitCode": "?"}}
    )
    assert (sj.job_id, sj.exit_code) == (17, None)


def test_terminal_is_sticky_per_generation() -> None:
    status = compute(Observed(failure=Problem("InvalidSpec", "x")))
    assert is_terminal(status, 1)
    assert not is_terminal(status, 2)
    assert not is_terminal({}, 1)


def test_child_times_must_be_rfc3339() -> None:
    view = SlurmJobView.from_object(
        {"metadata": {"name": "k"}, "status": {"startTime": "yesterday", "endTime": T1}}
    )
    assert (view.start_time, view.end_time) == ("", T1)
