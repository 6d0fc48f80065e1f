"""Pure status computation of the bridge: every Slurm state, every observation, the rules.

The rules under test: the phase for every Slurm state (terminal or not, flags
included); the mirrored fields; the five conditions and their reasons;
lastTransitionTime moves only when a condition's status flips; a poll that
learns nothing new gives an equal status (so nothing is written); a terminal
status is final; Events only on transitions.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from slurm_bridge.client.models import JobInfo
from slurm_bridge.status import (
    CONDITION_TYPES,
    Lost,
    Polled,
    Rejected,
    Submitted,
    Submitting,
    Unreachable,
    apply,
    condition,
    describe,
    dump,
    parse,
    phase_of,
    transition_events,
)
from vectorpipe_api.slurmjob import SlurmJobStatus

T0, T1, T2, T3 = (f"2025-01-01T00:0{i}:00Z" for i in range(4))
START = dt.datetime(2025, 1, 1, 0, 1, tzinfo=dt.UTC)
END = dt.datetime(2025, 1, 1, 0, 2, 30, tzinfo=dt.UTC)


def info(state: str, **kw: Any) -> JobInfo:
    base: dict[str, Any] = {"job_id": 12, "state": state}
    if state not in ("PENDING",):
        base.update(nodes="node1", start_time=START)
    return JobInfo(**{**base, **kw})


def ended(state: str, exit_code: int | None = 0, reason: str = "", **kw: Any) -> JobInfo:
    return info(state, exit_code=exit_code, state_reason=reason, end_time=END, **kw)


def run(*observations: Any, old: SlurmJobStatus | None = None) -> SlurmJobStatus:
    status = old or SlurmJobStatus()
    for i, obs in enumerate(observations):
        status = apply(status, obs, generation=1, now=f"2025-01-01T00:0{i}:00Z")
    return status


def cond(status: SlurmJobStatus, ctype: str) -> tuple[str, str]:
    c = condition(status, ctype)
    assert c is not None
    return c.status, c.reason


SUBMITTED = run(Submitting(1), Submitted(12, 1))


@pytest.mark.parametrize(
    ("job", "phase"),
    [
        (info("PENDING", state_reason="Resources"), "Submitted"),
        (info("PENDING", flags=("REQUEUED",)), "Submitted"),
        (info("REQUEUE_HOLD", flags=("REQUEUE_HOLD",)), "Submitted"),
        (info("RUNNING"), "Running"),
        (info("CONFIGURING", flags=("CONFIGURING",)), "Running"),
        (info("COMPLETING", flags=("COMPLETING",)), "Running"),
        (info("SUSPENDED"), "Running"),
        # v0.0.40+: a terminal base state is final only once COMPLETING is gone.
        (ended("FAILED", 3, flags=("COMPLETING",)), "Running"),
        (ended("COMPLETED"), "Succeeded"),
        (ended("FAILED", 3, "NonZeroExitCode"), "Failed"),
        (ended("TIMEOUT", 0, "TimeLimit"), "Failed"),
        (ended("NODE_FAIL", None, "NodeDown"), "Failed"),
        (ended("OUT_OF_MEMORY", 0, "OutOfMemory"), "Failed"),
        (ended("PREEMPTED", None), "Failed"),
        (ended("BOOT_FAIL", None), "Failed"),
        (ended("DEADLINE", None), "Failed"),
        (ended("CANCELLED", None, signal=15), "Cancelled"),
    ],
    ids=lambda v: (
        v if isinstance(v, str) else f"{v.state}{'+' + ','.join(v.flags) if v.flags else ''}"
    ),
)
def test_phase_for_every_state(job: JobInfo, phase: str) -> None:
    assert phase_of(job) == phase
    assert run(Polled(job), old=SUBMITTED).phase == phase


def test_submitting_then_submitted() -> None:
    s = run(Submitting(1))
    assert (s.phase, s.submit_attempts, s.job_id) == ("Pending", 1, None)
    assert cond(s, "Submitted") == ("False", "Submitting")
    assert cond(s, "SlurmReachable") == ("Unknown", "NotContacted")
    s = apply(s, Submitted(12, 1), generation=1, now=T1)
    assert (s.phase, s.job_id, s.state, s.observed_generation) == ("Submitted", 12, "PENDING", 1)
    assert cond(s, "Submitted") == ("True", "Submitted")
    assert cond(s, "SlurmReachable") == ("True", "SlurmAnswered")
    assert [c.type for c in s.conditions] == list(CONDITION_TYPES)


def test_adoption_is_visible_in_condition_and_event() -> None:
    before = run(Submitting(1))
    after = apply(before, Submitted(12, 1, adopted=True), generation=1, now=T1)
    assert cond(after, "Submitted") == ("True", "Adopted")
    assert transition_events(before, after) == [
        ("Normal", "Adopted", "Slurm job 12 adopted (attempt 1)")
    ]


def test_success_mirrors_every_field() -> None:
    s = run(Polled(info("RUNNING")), Polled(ended("COMPLETED")), old=SUBMITTED)
    assert (s.phase, s.state, s.exit_code, s.nodes) == ("Succeeded", "COMPLETED", 0, "node1")
    assert (s.start_time, s.end_time) == ("2025-01-01T00:01:00Z", "2025-01-01T00:02:30Z")
    assert s.message == "Slurm job 12 COMPLETED on node1, exit code 0"
    assert cond(s, "Complete") == ("True", "Succeeded")
    assert cond(s, "Failed") == ("False", "Succeeded")
    assert cond(s, "Running") == ("False", "Succeeded")


@pytest.mark.parametrize(
    ("job", "reason", "text"),
    [
        (ended("FAILED", 3, "NonZeroExitCode"), "NonZeroExitCode", "FAILED on node1, exit code 3"),
        (ended("TIMEOUT", 0, "TimeLimit"), "Timeout", "TIMEOUT (hit its time limit): TimeLimit"),
        (ended("NODE_FAIL", None, "NodeDown"), "NodeFail", "NODE_FAIL (a node failed): NodeDown"),
        (ended("OUT_OF_MEMORY", 0, "OutOfMemory"), "OutOfMemory", "(ran out of memory)"),
        (ended("PREEMPTED", None), "Preempted", "PREEMPTED (was preempted)"),
        (ended("FAILED", None, "RaisedSignal:9(Killed)", signal=9), "Failed", "killed by signal 9"),
    ],
)
def test_failures_keep_exit_code_reason_and_explain_themselves(
    job: JobInfo, reason: str, text: str
) -> None:
    s = run(Polled(info("RUNNING")), Polled(job), old=SUBMITTED)
    assert s.phase == "Failed" and s.state == job.state and s.exit_code == job.exit_code
    assert s.reason == (job.state_reason or None)
    assert cond(s, "Failed") == ("True", reason)
    assert text in (s.message or "")
    assert cond(s, "Complete") == ("False", "Failed")


def test_cancelled() -> None:
    s = run(Polled(ended("CANCELLED", None, signal=15)), old=SUBMITTED)
    assert (s.phase, s.state) == ("Cancelled", "CANCELLED")
    assert cond(s, "Failed") == ("True", "Cancelled")


def test_unreachable_keeps_the_phase_and_says_why_then_recovers() -> None:
    running = run(Polled(info("RUNNING")), old=SUBMITTED)
    down = apply(
        running, Unreachable("SlurmUnavailable", "connection refused"), generation=1, now=T2
    )
    assert down.phase == "Running" and down.job_id == 12
    assert cond(down, "SlurmReachable") == ("False", "SlurmUnavailable")
    assert condition(down, "SlurmReachable").message == "connection refused"  # type: ignore[union-attr]
    assert cond(down, "Running") == ("True", "Running")
    assert (
        condition(down, "Running").last_transition_time
        == condition(running, "Running").last_transition_time
    )  # type: ignore[union-attr]
    assert transition_events(running, down) == [
        ("Warning", "SlurmUnreachable", "SlurmUnavailable: connection refused")
    ]
    up = apply(down, Polled(info("RUNNING")), generation=1, now=T3)
    assert cond(up, "SlurmReachable") == ("True", "SlurmAnswered")
    assert transition_events(down, up) == [("Normal", "SlurmReachable", "Slurm answers again")]


def test_unreachable_before_submission_shows_in_submitted() -> None:
    s = run(Submitting(1), Unreachable("SecretNotFound", "Secret ns/jwt not found"))
    assert s.phase == "Pending" and s.job_id is None
    assert cond(s, "Submitted") == ("False", "SecretNotFound")
    assert cond(s, "SlurmReachable") == ("False", "SecretNotFound")


def test_nothing_new_means_an_equal_status() -> None:
    running = run(Polled(info("RUNNING")), old=SUBMITTED)
    again = apply(running, Polled(info("RUNNING")), generation=1, now=T3)
    assert dump(again) == dump(running)
    assert transition_events(running, again) == []


def test_last_transition_time_moves_only_on_a_flip() -> None:
    pending = run(Polled(info("PENDING", state_reason="Priority")), old=SUBMITTED)
    t = condition(pending, "Running").last_transition_time  # type: ignore[union-attr]
    # Reason changes, status does not: the time stays.
    later = apply(pending, Polled(info("PENDING", state_reason="Resources")), generation=1, now=T3)
    assert condition(later, "Running").last_transition_time == t  # type: ignore[union-attr]
    assert later.reason == "Resources"
    running = apply(later, Polled(info("RUNNING")), generation=1, now=T3)
    assert condition(running, "Running").last_transition_time == T3  # type: ignore[union-attr]


def test_terminal_is_final() -> None:
    done = run(Polled(ended("COMPLETED")), old=SUBMITTED)
    for obs in (Polled(info("RUNNING")), Unreachable("X", "y"), Lost(12), Rejected("R", "m")):
        assert apply(done, obs, generation=1, now=T3) == done


def test_lost_job_fails_with_its_own_reason() -> None:
    s = run(Polled(info("RUNNING")), Lost(12), old=SUBMITTED)
    assert (s.phase, s.reason) == ("Failed", "SlurmJobLost")
    assert cond(s, "Failed") == ("True", "SlurmJobLost")


def test_rejections() -> None:
    by_slurm = run(Submitting(1), Rejected("SubmitRejected", "Invalid partition name specified"))
    assert (by_slurm.phase, by_slurm.reason) == ("Failed", "SubmitRejected")
    assert cond(by_slurm, "Submitted") == ("False", "SubmitRejected")
    assert cond(by_slurm, "SlurmReachable") == ("True", "SlurmAnswered")
    bad_spec = run(Rejected("InvalidSpec", "nodes: must be >= 1", by_slurm=False))
    assert cond(bad_spec, "Failed") == ("True", "InvalidSpec")
    assert cond(bad_spec, "SlurmReachable") == ("Unknown", "NotContacted")


def test_resubmission_clears_the_old_job_and_counts_attempts() -> None:
    running = run(Polled(info("RUNNING")), old=SUBMITTED)
    failed = apply(running, Polled(ended("NODE_FAIL", None)), generation=1, now=T2)
    again = apply(failed, Submitting(2, "attempt 1: node died"), generation=1, now=T2)
    assert (again.phase, again.job_id, again.state, again.exit_code) == (
        "Pending",
        None,
        None,
        None,
    )
    assert again.submit_attempts == 2
    assert again.message == "attempt 1: node died; resubmitting (attempt 2)"
    assert transition_events(running, again) == [("Warning", "Resubmitting", again.message)]
    second = apply(again, Submitted(13, 2), generation=1, now=T3)
    assert (second.job_id, second.submit_attempts, second.phase) == (13, 2, "Submitted")


def test_events_for_each_phase_move() -> None:
    running = run(Polled(info("RUNNING")), old=SUBMITTED)
    assert transition_events(SUBMITTED, running)[0][:2] == ("Normal", "Running")
    failed = apply(running, Polled(ended("FAILED", 3, "NonZeroExitCode")), generation=1, now=T3)
    assert transition_events(running, failed) == [("Warning", "Failed", failed.message)]


def test_status_round_trips_through_the_wire_form() -> None:
    s = run(Polled(ended("TIMEOUT", 0, "TimeLimit")), old=SUBMITTED)
    wire = dump(s)
    assert wire["jobId"] == 12 and wire["exitCode"] == 0 and wire["observedGeneration"] == 1
    assert wire["conditions"][0]["lastTransitionTime"]  # type: ignore[index]
    assert parse(wire) == s
    assert parse({"phase": "Nonsense"}) == SlurmJobStatus()


def test_describe() -> None:
    assert describe(info("PENDING", state_reason="Resources")) == "Slurm job 12 PENDING: Resources"
