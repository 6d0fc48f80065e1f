"""Pure status computation: from what was observed to the status to write.

`compute_status` takes the pipeline's generation and previous status plus an
`Observed` (the RayJob, the manifest, the SlurmJob as just read, and any
transient or permanent problem a step reported) and returns the complete new
status: one phase, the three standard conditions (EmbeddingComplete,
ClusteringComplete, Ready), observedGeneration, child summaries, outputs and
start/completion times, for the run `run_id` (a new run starts from an empty
`old`). It never reads the clock (`now` is a parameter) and
keeps a condition's lastTransitionTime while its status is unchanged, so a
reconcile that sees nothing new computes a status equal to the old one and
the operator writes nothing. The views parse children defensively: a child
someone else writes (KubeRay, the slurm-bridge, a test harness) may lack any
field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vectorpipe_api.base import Condition
from vectorpipe_api.pipeline_status import (
    COND_CLUSTERING,
    COND_EMBEDDING,
    COND_READY,
    TERMINAL,
    Outputs,
    Phase,
    RayStatus,
    SlurmStatus,
    VectorPipelineStatus,
)
from vectorpipe_api.slurmjob import TERMINAL_PHASES as SLURM_TERMINAL
from vectorpipe_kopf.errors import Problem
from vectorpipe_workloads.manifest import clustering_uri
from vectorpipe_workloads.storage import join

MAX_MESSAGE = 2000
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
RAY_FAILED_DEPLOYMENT = frozenset({"Failed", "ValidationFailed"})


def _s(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return "" if value is None else str(value)


def _time(obj: Mapping[str, Any], key: str) -> str:
    # Our status schema says format: date-time; a child written by someone
    # else must not make the pipeline's status write fail validation.
    value = _s(obj, key)
    return value if RFC3339.match(value) else ""


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


@dataclass(frozen=True)
class RayJobView:
    name: str
    job_status: str = ""
    deployment_status: str = ""
    reason: str = ""
    message: str = ""
    start_time: str = ""
    end_time: str = ""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> RayJobView:
        st = obj.get("status") or {}
        return cls(
            name=_s(obj.get("metadata") or {}, "name"),
            job_status=_s(st, "jobStatus"),
            deployment_status=_s(st, "jobDeploymentStatus"),
            reason=_s(st, "reason"),
            message=_clip(_s(st, "message")),
            start_time=_time(st, "startTime"),
            end_time=_time(st, "endTime"),
        )

    @property
    def succeeded(self) -> bool:
        return self.deployment_status == "Complete" and self.job_status == "SUCCEEDED"

    @property
    def failed(self) -> bool:
        # KubeRay persists Failed only once backoffLimit is used up (it writes
        # Retrying instead while retries remain), so Failed is final.
        if self.deployment_status in RAY_FAILED_DEPLOYMENT:
            return True
        return self.deployment_status == "Complete" and self.job_status != "SUCCEEDED"

    def failure(self) -> Problem:
        if self.deployment_status == "ValidationFailed":
            reason = "RayJobInvalid"
        elif self.reason == "DeadlineExceeded":
            reason = "RayJobDeadlineExceeded"
        elif self.job_status == "STOPPED":
            reason = "RayJobStopped"
        else:
            reason = "RayJobFailed"
        detail = ": ".join(x for x in (self.reason, self.message) if x)
        state = f"{self.deployment_status}/{self.job_status or '-'}"
        return Problem(reason, f"RayJob {self.name} {state}" + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class SlurmJobView:
    name: str
    phase: str = ""
    job_id: int | None = None
    state: str = ""
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    start_time: str = ""
    end_time: str = ""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> SlurmJobView:
        st = obj.get("status") or {}
        job_id, exit_code = st.get("jobId"), st.get("exitCode")
        return cls(
            name=_s(obj.get("metadata") or {}, "name"),
            phase=_s(st, "phase"),
            job_id=int(job_id) if isinstance(job_id, int | str) and str(job_id).isdigit() else None,
            state=_s(st, "state"),
            exit_code=int(exit_code) if isinstance(exit_code, int) else None,
            reason=_s(st, "reason"),
            message=_clip(_s(st, "message")),
            start_time=_time(st, "startTime"),
            end_time=_time(st, "endTime"),
        )

    def failure(self) -> Problem:
        reason = "SlurmJobCancelled" if self.phase == "Cancelled" else "SlurmJobFailed"
        bits = [f"SlurmJob {self.name} {self.phase}"]
        if self.job_id is not None:
            bits.append(f"job {self.job_id}")
        if self.state:
            bits.append(f"state {self.state}")
        if self.exit_code is not None:
            bits.append(f"exit code {self.exit_code}")
        detail = ": ".join(x for x in (self.reason, self.message) if x)
        return Problem(reason, ", ".join(bits) + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class ManifestView:
    uri: str
    rows: int
    shards: int
    dim: int
    format: str
    bytes: int = 0


@dataclass
class Observed:
    """What one reconcile pass saw; steps fill it in order and stop at a problem."""

    rayjob: RayJobView | None = None
    manifest: ManifestView | None = None
    slurmjob: SlurmJobView | None = None
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
                message=_clip(message),
                last_transition_time=when,
            )
        )
    return out


def _ray(rj: RayJobView | None, old: Mapping[str, Any]) -> RayStatus | None:
    if rj is None:
        prev = old.get("ray")
        return RayStatus.model_validate(prev) if isinstance(prev, Mapping) and prev else None
    return RayStatus(
        ray_job=rj.name,
        job_status=rj.job_status or None,
        job_deployment_status=rj.deployment_status or None,
        reason=rj.reason or None,
        message=rj.message or None,
        start_time=rj.start_time or None,
        end_time=rj.end_time or None,
    )


def _slurm(sj: SlurmJobView | None, old: Mapping[str, Any]) -> SlurmStatus | None:
    if sj is None:
        prev = old.get("slurm")
        return SlurmStatus.model_validate(prev) if isinstance(prev, Mapping) and prev else None
    return SlurmStatus(
        slurm_job=sj.name,
        phase=sj.phase or None,
        job_id=sj.job_id,
        state=sj.state or None,
        exit_code=sj.exit_code,
        reason=sj.reason or None,
        message=sj.message or None,
        start_time=sj.start_time or None,
        end_time=sj.end_time or None,
    )


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
    conditions = _conditions(
        old,
        now,
        [
            (COND_EMBEDDING, _embedding(observed, problem)),
            (COND_CLUSTERING, _clustering(observed, phase, problem)),
            (COND_READY, _ready(observed, phase, problem, outputs)),
        ],
    )
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
        ray=_ray(observed.rayjob, old),
        slurm=_slurm(observed.slurmjob, old),
        outputs=outputs,
    )
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def condition(status: Mapping[str, Any], ctype: str) -> Mapping[str, Any]:
    """One condition of a status dict by type ({} if absent)."""
    for c in status.get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == ctype:
            return c
    return {}
