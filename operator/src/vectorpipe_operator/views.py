"""Pure, defensive views of the children and their mirror in the pipeline's status.

`RayJobView` and `SlurmJobView` parse a child someone else writes (KubeRay,
the slurm-bridge, a test harness), which may lack any field; `ray_status` and
`slurm_status` turn a view into the summary the pipeline's status keeps
(`status.ray`, `status.slurm`), keeping the last one seen when the child
could not be read this pass. The RayJob mirror carries what a user needs to
find stage 1 in the cluster: the RayCluster KubeRay made for it, the Ray
dashboard URL and the Ray job id (KubeRay v1.5.0 `status.rayClusterName`,
`.dashboardURL`, `.jobId`). Nothing here talks to the API or reads the clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vectorpipe_api.pipeline_status import RayStatus, SlurmStatus
from vectorpipe_kopf.errors import Problem

MAX_MESSAGE = 2000
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
RAY_FAILED_DEPLOYMENT = frozenset({"Failed", "ValidationFailed"})


def text(obj: Mapping[str, Any], key: str) -> str:
    """`obj[key]` as a string, "" if absent or null."""
    value = obj.get(key)
    return "" if value is None else str(value)


def timestamp(obj: Mapping[str, Any], key: str) -> str:
    """`obj[key]` if it is an RFC 3339 time, else "".

    Our status schema says format: date-time; a child written by someone else
    must not make the pipeline's status write fail validation.
    """
    value = text(obj, key)
    return value if RFC3339.match(value) else ""


def clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


@dataclass(frozen=True)
class RayJobView:
    name: str
    job_status: str = ""
    deployment_status: str = ""
    reason: str = ""
    message: str = ""
    start_time: str = ""
    end_time: str = ""
    cluster_name: str = ""
    dashboard_url: str = ""
    job_id: str = ""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> RayJobView:
        st = obj.get("status") or {}
        return cls(
            name=text(obj.get("metadata") or {}, "name"),
            job_status=text(st, "jobStatus"),
            deployment_status=text(st, "jobDeploymentStatus"),
            reason=text(st, "reason"),
            message=clip(text(st, "message")),
            start_time=timestamp(st, "startTime"),
            end_time=timestamp(st, "endTime"),
            cluster_name=text(st, "rayClusterName"),
            dashboard_url=text(st, "dashboardURL"),
            job_id=text(st, "jobId"),
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
            name=text(obj.get("metadata") or {}, "name"),
            phase=text(st, "phase"),
            job_id=int(job_id) if isinstance(job_id, int | str) and str(job_id).isdigit() else None,
            state=text(st, "state"),
            exit_code=int(exit_code) if isinstance(exit_code, int) else None,
            reason=text(st, "reason"),
            message=clip(text(st, "message")),
            start_time=timestamp(st, "startTime"),
            end_time=timestamp(st, "endTime"),
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


def ray_status(rj: RayJobView | None, old: Mapping[str, Any]) -> RayStatus | None:
    """`status.ray`: the RayJob as just read, else as last recorded."""
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
        ray_cluster_name=rj.cluster_name or None,
        dashboard_url=rj.dashboard_url or None,
        job_id=rj.job_id or None,
    )


def slurm_status(sj: SlurmJobView | None, old: Mapping[str, Any]) -> SlurmStatus | None:
    """`status.slurm`: the SlurmJob as just read, else as last recorded."""
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
