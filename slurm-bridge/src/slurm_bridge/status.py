"""Pure status computation for a SlurmJob: from what the bridge just learned to the new status.

The controller reports what happened in a pass as observations: it is about
to submit attempt N (`Submitting`), a Slurm job was submitted or adopted
(`Submitted`), Slurm reported the job (`Polled`), Slurm forgot a job that had
not ended (`Lost`), Slurm or the connection settings could not be used right
now (`Unreachable`), or the job can never run as specified (`Rejected`).
`apply` folds one observation into the previous `SlurmJobStatus` and returns
the next one: the phase (`phase_of` maps every Slurm state, TIMEOUT, NODE_FAIL,
OUT_OF_MEMORY and CANCELLED included), the mirrored Slurm fields, and the five
standard conditions (Submitted, Running, Complete, Failed, SlurmReachable)
whose lastTransitionTime moves only when their status flips. Nothing reads the
clock (`now` is a parameter), so a poll that learns nothing new yields a status
equal to the old one and nothing is written. `transition_events` lists the
Kubernetes Events that a change from one status to the next deserves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from slurm_bridge.client.models import JobInfo
from vectorpipe_api.base import Condition
from vectorpipe_api.slurmjob import TERMINAL_PHASES, SlurmJobPhase, SlurmJobStatus

COND_SUBMITTED = "Submitted"
COND_RUNNING = "Running"
COND_COMPLETE = "Complete"
COND_FAILED = "Failed"
COND_REACHABLE = "SlurmReachable"
CONDITION_TYPES = (COND_SUBMITTED, COND_RUNNING, COND_COMPLETE, COND_FAILED, COND_REACHABLE)

# Waiting in the queue (possibly again, after a requeue or a hold).
QUEUED_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
EXPLAINED = {
    "BOOT_FAIL": "a node failed to boot",
    "DEADLINE": "missed its deadline",
    "NODE_FAIL": "a node failed",
    "OUT_OF_MEMORY": "ran out of memory",
    "PREEMPTED": "was preempted",
    "TIMEOUT": "hit its time limit",
}
MAX_MESSAGE = 2000


@dataclass(frozen=True)
class Submitting:
    attempt: int
    why: str = ""  # for a resubmission: what happened to the previous attempt


@dataclass(frozen=True)
class Submitted:
    job_id: int
    attempt: int
    adopted: bool = False


@dataclass(frozen=True)
class Polled:
    info: JobInfo


@dataclass(frozen=True)
class Lost:
    job_id: int


@dataclass(frozen=True)
class Unreachable:
    reason: str
    message: str


@dataclass(frozen=True)
class Rejected:
    reason: str
    message: str
    by_slurm: bool = True  # Slurm said no (so it was reachable), vs. a bad spec


Observation = Submitting | Submitted | Polled | Lost | Unreachable | Rejected
Triple = tuple[Literal["True", "False", "Unknown"], str, str]


def phase_of(info: JobInfo) -> SlurmJobPhase:
    """The SlurmJob phase for a Slurm job as last reported."""
    if not info.is_terminal:
        return "Submitted" if info.state in QUEUED_STATES else "Running"
    if info.state == "COMPLETED":
        return "Succeeded"
    if info.state == "CANCELLED":
        return "Cancelled"
    return "Failed"


def camel(state: str) -> str:
    """A Slurm state as a condition reason: NODE_FAIL -> NodeFail."""
    return "".join(p.capitalize() for p in state.split("_")) or "Unknown"


def rfc3339(when: dt.datetime | None) -> str | None:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def describe(info: JobInfo) -> str:
    """One line a human reads: 'Slurm job 12 TIMEOUT (hit its time limit) on n1, exit code 0'."""
    text = f"Slurm job {info.job_id} {info.state}"
    if info.state in EXPLAINED:
        text += f" ({EXPLAINED[info.state]})"
    if info.state_reason and info.state_reason not in ("None", "NonZeroExitCode"):
        text += f": {info.state_reason}"
    if info.nodes:
        text += f" on {info.nodes}"
    if info.exit_code is not None and info.is_terminal:
        text += f", exit code {info.exit_code}"
    if info.signal:
        text += f", killed by signal {info.signal}"
    return text


def _mirror(old: SlurmJobStatus, info: JobInfo) -> SlurmJobStatus:
    return old.model_copy(
        update={
            "phase": phase_of(info),
            "job_id": info.job_id,
            "state": info.state,
            "reason": info.state_reason or None,
            "message": describe(info),
            "exit_code": info.exit_code,
            "nodes": info.nodes or None,
            "start_time": rfc3339(info.start_time),
            "end_time": rfc3339(info.end_time),
        }
    )


_CLEARED = {
    "job_id": None,
    "state": None,
    "reason": None,
    "exit_code": None,
    "nodes": None,
    "start_time": None,
    "end_time": None,
}


def _fields(old: SlurmJobStatus, obs: Observation) -> SlurmJobStatus:
    """The non-condition fields after `obs`."""
    if isinstance(obs, Submitting):
        why = f"{obs.why}; resubmitting (attempt {obs.attempt})" if obs.why else ""
        return old.model_copy(
            update={
                **_CLEARED,
                "phase": "Pending",
                "submit_attempts": obs.attempt,
                "message": why or f"submitting attempt {obs.attempt} to Slurm",
            }
        )
    if isinstance(obs, Submitted):
        verb = "adopted" if obs.adopted else "submitted"
        return old.model_copy(
            update={
                **_CLEARED,
                "phase": "Submitted",
                "job_id": obs.job_id,
                "state": "PENDING",
                "submit_attempts": max(obs.attempt, old.submit_attempts or 0),
                "message": f"Slurm job {obs.job_id} {verb} (attempt {obs.attempt})",
            }
        )
    if isinstance(obs, Polled):
        return _mirror(old, obs.info)
    if isinstance(obs, Lost):
        return old.model_copy(
            update={
                "phase": "Failed",
                "reason": "SlurmJobLost",
                "message": f"Slurm no longer knows job {obs.job_id} and never reported its end "
                "(purged after MinJobAge while the bridge was away?)",
            }
        )
    if isinstance(obs, Rejected):
        return old.model_copy(
            update={"phase": "Failed", "reason": obs.reason, "message": _clip(obs.message)}
        )
    # Unreachable: the job is as it was; only SlurmReachable (and Submitted) say more.
    return old.model_copy(update={"phase": old.phase or "Pending"})


def _old_triple(old: SlurmJobStatus, ctype: str) -> Triple | None:
    for c in old.conditions:
        if c.type == ctype:
            return c.status, c.reason, c.message
    return None


def _submitted(old: SlurmJobStatus, new: SlurmJobStatus, obs: Observation) -> Triple:
    if isinstance(obs, Submitted):
        reason = "Adopted" if obs.adopted else "Submitted"
        return "True", reason, new.message or ""
    prev = _old_triple(old, COND_SUBMITTED)
    if new.job_id is not None:
        return prev if prev and prev[0] == "True" else ("True", "Submitted", "")
    if isinstance(obs, Submitting):
        return "False", "Submitting", new.message or ""
    if isinstance(obs, Unreachable | Rejected):
        return "False", obs.reason, _clip(obs.message)
    return prev or ("False", "Pending", "not submitted yet")


def _reachable(old: SlurmJobStatus, obs: Observation) -> Triple:
    if isinstance(obs, Unreachable):
        return "False", obs.reason, _clip(obs.message)
    if isinstance(obs, Submitted | Polled | Lost) or (isinstance(obs, Rejected) and obs.by_slurm):
        return "True", "SlurmAnswered", "Slurm answered the last request"
    return _old_triple(old, COND_REACHABLE) or ("Unknown", "NotContacted", "")


def _failed(new: SlurmJobStatus, obs: Observation) -> Triple:
    phase, message = new.phase or "Pending", new.message or ""
    if phase == "Cancelled":
        return "True", "Cancelled", message
    if phase != "Failed":
        return "False", phase, ""
    if not isinstance(obs, Polled):
        return "True", new.reason or "Failed", message
    state = new.state or "FAILED"
    # FAILED says little; Slurm's reason (NonZeroExitCode, ...) says more when it is a word.
    if state == "FAILED" and new.reason and new.reason.isalnum():
        return "True", new.reason, message
    return "True", camel(state), message


def _triples(old: SlurmJobStatus, new: SlurmJobStatus, obs: Observation) -> list[Triple]:
    phase, message = new.phase or "Pending", new.message or ""
    running: Triple = ("True", "Running", message) if phase == "Running" else ("False", phase, "")
    complete: Triple = (
        ("True", "Succeeded", message) if phase == "Succeeded" else ("False", phase, "")
    )
    return [_submitted(old, new, obs), running, complete, _failed(new, obs), _reachable(old, obs)]


def conditions(old: SlurmJobStatus, triples: Sequence[Triple], now: str) -> list[Condition]:
    """The standard conditions; lastTransitionTime stays put while a status is unchanged."""
    before = {c.type: c for c in old.conditions}
    out = []
    for ctype, (status, reason, message) in zip(CONDITION_TYPES, triples, strict=True):
        prev = before.get(ctype)
        same = prev is not None and prev.status == status and prev.last_transition_time
        when = prev.last_transition_time if same and prev is not None else now
        out.append(
            Condition(
                type=ctype, status=status, reason=reason, message=message, last_transition_time=when
            )
        )
    return out


def apply(old: SlurmJobStatus, obs: Observation, *, generation: int, now: str) -> SlurmJobStatus:
    """The status after `obs`; equal to `old` when `obs` teaches nothing new."""
    if old.phase in TERMINAL_PHASES and not isinstance(obs, Submitting):
        return old  # the end is final (a resubmission starts with Submitting)
    new = _fields(old, obs).model_copy(update={"observed_generation": generation})
    return new.model_copy(update={"conditions": conditions(old, _triples(old, new, obs), now)})


def parse(status: object) -> SlurmJobStatus:
    """The stored status, tolerating anything a human or an old bridge wrote."""
    try:
        return SlurmJobStatus.model_validate(status or {})
    except ValueError:
        return SlurmJobStatus()


def dump(status: SlurmJobStatus) -> dict[str, object]:
    out: dict[str, object] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return out


def condition(status: SlurmJobStatus, ctype: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == ctype), None)


Event = tuple[Literal["Normal", "Warning"], str, str]


def transition_events(old: SlurmJobStatus, new: SlurmJobStatus) -> list[Event]:
    """The Events worth posting for the move from `old` to `new` (type, reason, message)."""
    events: list[Event] = []
    message = new.message or ""
    if new.phase != old.phase:
        sub = condition(new, COND_SUBMITTED)
        if new.phase == "Submitted":
            adopted = sub is not None and sub.reason == "Adopted"
            events.append(("Normal", "Adopted" if adopted else "Submitted", message))
        elif new.phase in ("Running", "Succeeded"):
            events.append(("Normal", new.phase, message))
        elif new.phase in ("Failed", "Cancelled"):
            events.append(("Warning", new.phase, message))
        elif new.phase == "Pending" and old.phase is not None:
            events.append(("Warning", "Resubmitting", message))
    before, after = condition(old, COND_REACHABLE), condition(new, COND_REACHABLE)
    if after is not None and (before is None or before.status != after.status):
        if after.status == "False":
            events.append(("Warning", "SlurmUnreachable", f"{after.reason}: {after.message}"))
        elif before is not None and before.status == "False":
            events.append(("Normal", "SlurmReachable", "Slurm answers again"))
    return events
