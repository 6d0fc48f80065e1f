"""Pure status computation: from what was observed to the status to write.

`compute_status` takes the pipeline's generation and previous status plus an
`Observed` (the RayJob, the manifest, the SlurmJob as just read, and any
transient or permanent problem a step reported) and returns the complete new
status: one phase, the standard conditions (EmbeddingComplete,
ClusteringComplete, Ready, and PodsHealthy once stage 1's pods were looked
at: `vectorpipe_operator.pods` diagnoses them), observedGeneration, child summaries, outputs and
start/completion times, for the run `run_id` (a new run starts from an empty
`old`). It never reads the clock (`now` is a parameter) and
keeps a condition's lastTransitionTime while its status is unchanged, so a
reconcile that sees nothing new computes a status equal to the old one and
the operator writes nothing. The children's views and their mirror in the
status live in `vectorpipe_operator.views`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vectorpipe_api.base import Condition
from vectorpipe_api.pipeline_status import (
    COND_CLUSTERING,
    COND_EMBEDDING,
    COND_PODS,
    COND_READY,
    TERMINAL,
    Outputs,
    Phase,
    VectorPipelineStatus,
)
from vectorpipe_api.slurmjob import TERMINAL_PHASES as SLURM_TERMINAL
from vectorpipe_kopf.errors import Problem
from vectorpipe_operator.pods import PodsView
from vectorpipe_operator.views import ManifestView as ManifestView
from vectorpipe_operator.views import RayJobView as RayJobView
from vectorpipe_operator.views import SlurmJobView as SlurmJobView
from vectorpipe_operator.views import clip, ray_status, slurm_status
from vectorpipe_workloads.manifest import clustering_uri
from vectorpipe_workloads.storage import join


@dataclass
class Observed:
    """What one reconcile pass saw; steps fill it in order and stop at a problem."""

    rayjob: RayJobView | None = None
    manifest: ManifestView | None = None
    slurmjob: SlurmJobView | None = None
    pods: PodsView | None = None  # stage 1's pods, when looked at this pass
    recheck_after: float | None = None  # seconds until a stuck pod's grace runs out
    waiting: Problem | None = None  # transient: shown in Ready, phase unchanged
    failure: Problem | None = None  # permanent: phase Failed


def manifest_from_status(status: Mapping[str, Any]) -> ManifestView | None:
    """The manifest recorded once embedding completed: stage 1 is never looked at again."""
    conds = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    out = status.get("outputs") or {}
    if conds.get(COND_EMBEDDING, {}).get("status") != "True" or not out.get("manifest"):
        return None
    return ManifestView(
        uri=str(out["manifest"]),
        rows=int(out.get("rows") or 0),
        shards=int(out.get("shards") or 0),
        dim=int(out.get("dim") or 0),
        format=str(out.get("format") or ""),
        bytes=int(out.get("bytes") or 0),
    )


def is_terminal(status: Mapping[str, Any], generation: int) -> bool:
    return status.get("phase") in TERMINAL and status.get("observedGeneration") == generation


def failed_on_stuck_pod(status: Mapping[str, Any]) -> bool:
    """Whether this status says the run failed because a Ray container was stuck."""
    pods, ready = condition(status, COND_PODS), condition(status, COND_READY)
    return (
        status.get("phase") == "Failed"
        and pods.get("status") == "False"
        and ready.get("reason") == pods.get("reason")
    )


def derive_phase(obs: Observed) -> tuple[Phase, Problem | None]:
    """The phase and, for Failed, the problem that caused it."""
    if obs.failure is not None:
        return "Failed", obs.failure
    if obs.manifest is None:
        rj = obs.rayjob
        if rj is None or rj.deployment_status == "":
            return "Pending", None
        if rj.failed:
            return "Failed", rj.failure()
        return "Embedding", None
    sj = obs.slurmjob
    if sj is None or sj.phase not in SLURM_TERMINAL:
        return "Clustering", None
    if sj.phase == "Succeeded":
        return "Succeeded", None
    return "Failed", sj.failure()


def _embedding(obs: Observed, problem: Problem | None) -> tuple[str, str, str]:
    rj, m = obs.rayjob, obs.manifest
    if m is not None:
        return (
            "True",
            "ManifestCommitted",
            (f"{m.rows} rows in {m.shards} {m.format} shards of dimension {m.dim} at {m.uri}"),
        )
    if problem is not None:
        return "False", problem.reason, problem.message
    if rj is None:
        waiting = obs.waiting
        return "False", "RayJobPending", waiting.message if waiting else "RayJob not created yet"
    if rj.succeeded and obs.waiting is not None:
        return "False", "ManifestPending", obs.waiting.message
    if rj.deployment_status == "":
        return "False", "RayJobCreated", f"RayJob {rj.name} created; waiting for KubeRay"
    return (
        "False",
        f"RayJob{rj.deployment_status}",
        (f"RayJob {rj.name} {rj.deployment_status}, job {rj.job_status or 'not submitted'}"),
    )


def _clustering(obs: Observed, phase: Phase, problem: Problem | None) -> tuple[str, str, str]:
    sj = obs.slurmjob
    if obs.manifest is None:
        if phase == "Failed":
            return "False", "NotStarted", "embedding did not complete"
        return "False", "WaitingForEmbedding", "stage 2 starts once the manifest is committed"
    if sj is not None and sj.phase == "Succeeded":
        return "True", "SlurmJobSucceeded", f"SlurmJob {sj.name} succeeded"
    if problem is not None:
        return "False", problem.reason, problem.message
    if sj is None:
        waiting = obs.waiting
        return (
            "False",
            "SlurmJobPending",
            waiting.message if waiting else "SlurmJob not created yet",
        )
    p = sj.phase or "Pending"
    detail = f", Slurm job {sj.job_id} {sj.state}".rstrip() if sj.job_id is not None else ""
    return "False", f"SlurmJob{p}", f"SlurmJob {sj.name} {p}{detail}"


def _ready(
    obs: Observed, phase: Phase, problem: Problem | None, outputs: Outputs | None
) -> tuple[str, str, str]:
    if phase == "Succeeded":
        where = outputs.clustering if outputs and outputs.clustering else "the output URI"
        return "True", "Succeeded", f"clustering results at {where}"
    if problem is not None:
        return "False", problem.reason, problem.message
    if obs.pods is not None and obs.pods.fault is not None:
        stuck = obs.pods.fault.problem
        return "False", stuck.reason, stuck.message
    if obs.waiting is not None:
        return "False", obs.waiting.reason, obs.waiting.message
    messages = {
        "Pending": "waiting for the RayJob to start",
        "Embedding": "stage 1 (Ray ETL) is running",
        "Clustering": "stage 2 (MPI k-means on Slurm) is running",
    }
    return "False", phase, messages.get(phase, phase)


def _conditions(
    old: Mapping[str, Any], now: str, triples: list[tuple[str, tuple[str, str, str]]]
) -> list[Condition]:
    before = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, Mapping)}
    out = []
    for ctype, (status, reason, message) in triples:
        prev = before.get(ctype) or {}
        # lastTransitionTime moves only when status flips (metav1.Condition semantics).
        same = prev.get("status") == status and prev.get("lastTransitionTime")
        when = str(prev["lastTransitionTime"]) if same else now
        out.append(
            Condition(
                type=ctype,
                status=status,
                reason=reason,
                message=clip(message),
                last_transition_time=when,
            )
        )
    return out


def _pods(pods: PodsView) -> tuple[str, str, str]:
    if pods.fault is not None:
        stuck = pods.fault.problem
        return "False", stuck.reason, stuck.message
    return "True", "NoStuckContainers", "no Ray container is stuck"


def _outputs(m: ManifestView | None, output_uri: str | None, phase: Phase) -> Outputs | None:
    if m is None or output_uri is None:
        return None
    clustering = clustering_uri(output_uri)
    done = phase == "Succeeded"
    return Outputs(
        manifest=m.uri,
        format=m.format or None,
        shards=m.shards,
        rows=m.rows,
        dim=m.dim,
        bytes=m.bytes,
        clustering=clustering,
        centroids=join(clustering, "centroids.parquet") if done else None,
        metrics=join(clustering, "metrics.json") if done else None,
    )


def compute_status(
    *,
    generation: int,
    run_id: str | None = None,
    old: Mapping[str, Any],
    output_uri: str | None,
    observed: Observed,
    now: str,
) -> dict[str, Any]:
    """The complete new status, as the dict to store under `.status`."""
    phase, problem = derive_phase(observed)
    outputs = _outputs(observed.manifest, output_uri, phase)
    triples = [
        (COND_EMBEDDING, _embedding(observed, problem)),
        (COND_CLUSTERING, _clustering(observed, phase, problem)),
        (COND_READY, _ready(observed, phase, problem, outputs)),
    ]
    if observed.pods is not None:
        triples.append((COND_PODS, _pods(observed.pods)))
    conditions = _conditions(old, now, triples)
    pods_before = condition(old, COND_PODS)
    if observed.pods is None and pods_before:
        # Not looked at this pass (stage 1 over, or not started): keep the last word.
        conditions.append(Condition.model_validate(pods_before))
    started = observed.rayjob is not None or observed.manifest is not None
    start_time = old.get("startTime") or (now if started else None)
    completion = old.get("completionTime") if old.get("phase") in TERMINAL else None
    status = VectorPipelineStatus(
        phase=phase,
        observed_generation=generation,
        run_id=run_id,
        conditions=conditions,
        start_time=start_time,
        completion_time=completion or (now if phase in TERMINAL else None),
        ray=ray_status(observed.rayjob, old),
        slurm=slurm_status(observed.slurmjob, old),
        outputs=outputs,
    )
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def condition(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    """One condition of a status dict by type ({} if absent)."""
    for c in status.get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == ctype:
            return c
    return {}
