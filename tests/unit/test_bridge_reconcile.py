"""The controller's pass and finalizer against in-memory stand-ins for Kubernetes and Slurm.

These pin down the exactly-once rules without any service: the write-ahead of
the attempt number, adoption by comment instead of a second submit, the job id
recorded right after the submit, resubmission per backoffLimit with one status
write, rejection, unreachable Slurm (phase kept, TemporaryError with a capped
delay), status written only when changed, and what deletion cancels. The same
rules run for real in tests/k8s/test_slurmjob_controller.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import kopf
import pytest

from slurm_bridge.client import SlurmClient
from slurm_bridge.client.models import ControllerPing, JobInfo, JobRequest
from slurm_bridge.context import Bridge
from slurm_bridge.errors import SlurmRejected, SlurmUnavailable
from slurm_bridge.finalize import SKIP_CANCEL_ANNOTATION, finalize
from slurm_bridge.metrics import Metrics
from slurm_bridge.options import Options
from slurm_bridge.reconcile import reconcile
from slurm_bridge.script import job_key
from tests.support.fakes import FakeBridgeKube as FakeKube
from vectorpipe_api.slurmjob import SlurmConnection

UID = "0b4f-uid"


@dataclass
class FakeSlurm:
    jobs: dict[int, JobInfo] = field(default_factory=dict)
    requests: list[JobRequest] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    down: bool = False
    reject: str | None = None
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    def _check(self) -> None:
        if self.down:
            raise SlurmUnavailable("cannot connect to slurmrestd", request_sent=False)

    def submit(self, request: JobRequest) -> int:
        self._check()
        if self.reject:
            raise SlurmRejected(self.reject)
        job_id = next(self.ids)
        self.requests.append(request)
        self.jobs[job_id] = JobInfo(
            job_id, name=request.name or "", comment=request.comment or "", state="PENDING"
        )
        return job_id

    def get_job(self, job_id: int) -> JobInfo | None:
        self._check()
        return self.jobs.get(job_id)

    def find_by_comment(self, text: str) -> list[JobInfo]:
        self._check()
        return [j for j in self.jobs.values() if j.comment == text]

    def cancel(self, job_id: int) -> None:
        self._check()
        self.cancelled.append(job_id)
        self.jobs[job_id] = replace(self.jobs[job_id], state="CANCELLED")

    def list_jobs(self) -> list[JobInfo]:
        self._check()
        return list(self.jobs.values())

    def find_by_name(self, name: str) -> list[JobInfo]:
        self._check()
        return [j for j in self.jobs.values() if j.name == name]

    def ping(self) -> list[ControllerPing]:
        self._check()
        return []

    def set(self, job_id: int, state: str, **kw: Any) -> None:
        self.jobs[job_id] = replace(self.jobs[job_id], state=state, **kw)


class FakeClients:
    def __init__(self, slurm: FakeSlurm) -> None:
        self.slurm = slurm

    def for_connection(self, namespace: str, conn: SlurmConnection) -> SlurmClient:
        return self.slurm

    def close(self) -> None:
        pass


def slurmjob(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "SlurmJob",
        "metadata": {
            "name": "sj",
            "namespace": "ns",
            "uid": UID,
            "generation": 1,
            "annotations": {},
        },
        "spec": {"command": ["app"], **spec},
    }


@pytest.fixture
def slurm() -> FakeSlurm:
    return FakeSlurm()


def make(slurm: FakeSlurm, **spec: Any) -> tuple[Bridge, FakeKube]:
    kube = FakeKube(slurmjob(**spec))
    bridge = Bridge(kube, FakeClients(slurm), Options(poll_interval=5, max_backoff=40), Metrics())
    return bridge, kube


def test_first_pass_writes_ahead_then_submits_once_and_records_the_id(slurm: FakeSlurm) -> None:
    bridge, kube = make(slurm)
    reconcile(bridge, "ns", "sj")
    assert [p.get("submitAttempts") for p in kube.patches] == [1, 1]
    assert "jobId" not in kube.patches[0] and kube.patches[1]["jobId"] == 100
    assert kube.status["phase"] == "Submitted"
    (req,) = slurm.requests
    assert req.comment == job_key(UID, 1) and UID in (req.name or "")
    reconcile(bridge, "ns", "sj")  # a second pass only polls (and mirrors the PENDING job)
    assert len(slurm.requests) == 1 and kube.status["message"] == "Slurm job 100 PENDING"
    writes = len(kube.patches)
    reconcile(bridge, "ns", "sj")
    assert len(kube.patches) == writes  # nothing changed, nothing written
    assert kube.events == [("Normal", "Submitted", "Slurm job 100 submitted (attempt 1)")]


def test_a_job_submitted_before_a_crash_is_adopted_not_resubmitted(slurm: FakeSlurm) -> None:
    bridge, kube = make(slurm)
    # The previous bridge wrote ahead and submitted, then died before recording the id.
    kube.obj["status"] = {"phase": "Pending", "submitAttempts": 1}
    slurm.jobs[7] = JobInfo(7, comment=job_key(UID, 1), state="RUNNING", nodes="n1")
    reconcile(bridge, "ns", "sj")
    assert slurm.requests == []
    assert kube.status["jobId"] == 7
    assert ("Normal", "Adopted", "Slurm job 7 adopted (attempt 1)") in kube.events
    reconcile(bridge, "ns", "sj")
    assert kube.status["phase"] == "Running"


def test_polls_to_success(slurm: FakeSlurm) -> None:
    bridge, kube = make(slurm)
    reconcile(bridge, "ns", "sj")
    slurm.set(100, "RUNNING", nodes="n1")
    reconcile(bridge, "ns", "sj")
    slurm.set(100, "COMPLETED", exit_code=0)
    reconcile(bridge, "ns", "sj")
    assert (kube.status["phase"], kube.status["exitCode"]) == ("Succeeded", 0)
    assert [e[1] for e in kube.events] == ["Submitted", "Running", "Succeeded"]
    writes = len(kube.patches)
    reconcile(bridge, "ns", "sj")  # terminal: not even a poll
    assert len(kube.patches) == writes


def test_failure_is_resubmitted_per_backoff_limit_without_showing_failed(slurm: FakeSlurm) -> None:
    bridge, kube = make(slurm, backoffLimit=1)
    reconcile(bridge, "ns", "sj")
    slurm.set(100, "NODE_FAIL", exit_code=None)
    reconcile(bridge, "ns", "sj")
    assert all(p.get("phase") != "Failed" for p in kube.patches)
    assert [r.comment for r in slurm.requests] == [job_key(UID, 1), job_key(UID, 2)]
    assert (kube.status["jobId"], kube.status["submitAttempts"]) == (101, 2)
    assert ("Warning", "Resubmitting") in [e[:2] for e in kube.events]
    slurm.set(101, "FAILED", exit_code=3, state_reason="NonZeroExitCode")
    reconcile(bridge, "ns", "sj")
    assert len(slurm.requests) == 2  # limit reached
    assert (kube.status["phase"], kube.status["exitCode"]) == ("Failed", 3)


def test_cancelled_jobs_are_not_resubmitted(slurm: FakeSlurm) -> None:
    bridge, kube = make(slurm, backoffLimit=3)
    reconcile(bridge, "ns", "sj")
    slurm.set(100, "CANCELLED")
    reconcile(bridge, "ns", "sj")
    assert kube.status["phase"] == "Cancelled" and len(slurm.requests) == 1


def test_rejected_submission_fails_with_slurms_words(slurm: FakeSlurm) -> None:
    slurm.reject = "Invalid partition name specified"
    bridge, kube = make(slurm)
    reconcile(bridge, "ns", "sj")
    assert (kube.status["phase"], kube.status["reason"]) == ("Failed", "SubmitRejected")
    assert kube.status["message"] == "Invalid partition name specified"


def test_unreachable_slurm_keeps_phase_and_backs_off(slurm: FakeSlurm) -> None:
    bridge, kube = make(slurm)
    reconcile(bridge, "ns", "sj")
    slurm.down = True
    delays = []
    for retry in range(6):
        with pytest.raises(kopf.TemporaryError) as err:
            reconcile(bridge, "ns", "sj", retry=retry)
        delays.append(err.value.delay)
    assert delays == [5, 10, 20, 40, 40, 40]
    assert kube.status["phase"] == "Submitted"
    reach = {c["type"]: c for c in kube.status["conditions"]}["SlurmReachable"]
    assert (reach["status"], reach["reason"]) == ("False", "SlurmUnavailable")
    assert len(kube.patches) == 3  # the fault is written once, not once per retry
    slurm.down = False
    reconcile(bridge, "ns", "sj")
    assert {c["type"]: c for c in kube.status["conditions"]}["SlurmReachable"]["status"] == "True"


def test_quiet_pass_records_but_does_not_raise(slurm: FakeSlurm) -> None:
    slurm.down = True
    bridge, kube = make(slurm)
    reconcile(bridge, "ns", "sj", quiet=True)
    assert kube.status["submitAttempts"] == 1 and slurm.requests == []


def test_invalid_spec_fails(slurm: FakeSlurm) -> None:
    bridge, kube = make(slurm, nodes=0)
    reconcile(bridge, "ns", "sj")
    assert (kube.status["phase"], kube.status["reason"]) == ("Failed", "InvalidSpec")


def test_delete_cancels_recorded_and_unrecorded_jobs(slurm: FakeSlurm) -> None:
    bridge, kube = make(slurm)
    reconcile(bridge, "ns", "sj")
    # A stray job of the same attempt whose id never reached the status.
    slurm.jobs[55] = JobInfo(55, comment=job_key(UID, 1), state="PENDING")
    finalize(bridge, "ns", "sj", kube.obj)
    assert sorted(slurm.cancelled) == [55, 100]


def test_delete_of_a_never_submitted_or_finished_job_touches_nothing(slurm: FakeSlurm) -> None:
    slurm.down = True
    bridge, kube = make(slurm)
    finalize(bridge, "ns", "sj", kube.obj)  # no attempt recorded: nothing can exist in Slurm
    kube.obj["status"] = {"phase": "Succeeded", "jobId": 3, "submitAttempts": 1}
    finalize(bridge, "ns", "sj", kube.obj)
    assert slurm.cancelled == []


def test_delete_while_slurm_is_down_retries_and_names_the_escape_hatch(slurm: FakeSlurm) -> None:
    bridge, kube = make(slurm)
    reconcile(bridge, "ns", "sj")
    slurm.down = True
    with pytest.raises(kopf.TemporaryError, match=SKIP_CANCEL_ANNOTATION) as err:
        finalize(bridge, "ns", "sj", kube.obj, retry=10)
    assert err.value.delay == bridge.options.delete_backoff
    kube.obj["metadata"]["annotations"][SKIP_CANCEL_ANNOTATION] = "true"
    finalize(bridge, "ns", "sj", kube.obj)
    assert slurm.cancelled == []
