"""The interface every Slurm backend offers, so the controller never knows which it has.

`SlurmRestClient` (slurmrestd over HTTP with JWT) and `SlurmCliClient` (sbatch,
squeue, scancel on a login node) both satisfy `SlurmClient`; tests and the
controller type against this Protocol only. Errors are the ones in
`slurm_bridge.errors`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from slurm_bridge.client.models import ControllerPing, JobInfo, JobRequest


@runtime_checkable
class SlurmClient(Protocol):
    def submit(self, request: JobRequest) -> int:
        """Queue a batch job; returns its job id. Never retried after the request was sent."""
        ...

    def get_job(self, job_id: int) -> JobInfo | None:
        """The job, or None when Slurm does not know it (never existed or purged)."""
        ...

    def list_jobs(self) -> list[JobInfo]:
        """Every job slurmctld still remembers."""
        ...

    def find_by_comment(self, text: str) -> list[JobInfo]:
        """Jobs whose comment equals `text` (how a restarted controller adopts its job)."""
        ...

    def find_by_name(self, name: str) -> list[JobInfo]: ...

    def cancel(self, job_id: int) -> None:
        """Cancel the job; a job that already ended is not an error, an unknown one is SlurmNotFound."""
        ...

    def ping(self) -> list[ControllerPing]: ...
