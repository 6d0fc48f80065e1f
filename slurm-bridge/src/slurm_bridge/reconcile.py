"""One pass over one SlurmJob: submit exactly once, or poll, then write what changed.

Every trigger (create, resume, the poll timer) runs the same pass under the
SlurmJob's lock: read the object fresh; stop if it is gone, being deleted or
already Succeeded/Failed/Cancelled; parse the spec; pick the Slurm client.
Without a job id for the current attempt the pass submits, exactly once: it
first records the attempt number in status (write-ahead, so a deletion knows
whether anything can exist in Slurm), then looks for a Slurm job whose
comment carries the SlurmJob UID and this attempt (`job_key`) and adopts it,
and only when there is none submits and records the job id before anything
else can fail. With a job id it polls Slurm and mirrors the job. A failed job
is resubmitted while `spec.backoffLimit` allows, as a new attempt with its own
key, in the same status write so nobody ever sees a Failed that is not final.
Status is computed purely (`status.apply`) and written only when it changed,
with an Event per transition. Slurm or configuration trouble keeps the phase,
shows in SlurmReachable (and Submitted) and becomes a Kopf TemporaryError with
a capped, doubling delay; a spec that can never run, or a submission Slurm
rejects, makes the SlurmJob Failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import kopf
from pydantic import ValidationError

from slurm_bridge import status as st
from slurm_bridge.client import SlurmClient
from slurm_bridge.context import Bridge, lock_for, utcnow
from slurm_bridge.errors import SlurmAuthError, SlurmError, SlurmRejected, SlurmUnavailable
from slurm_bridge.script import Identity, build_request, job_key
from vectorpipe_api.slurmjob import TERMINAL_PHASES, SlurmJobSpec, SlurmJobStatus
from vectorpipe_kopf.errors import InvalidStateError, TransientError

log = logging.getLogger(__name__)

CONTACT_ERRORS = (SlurmUnavailable, SlurmAuthError, SlurmRejected, TransientError)


@dataclass
class Pass:
    """One SlurmJob as read at the start of a pass, and its status as the pass moves it."""

    bridge: Bridge
    body: dict[str, Any]
    status: SlurmJobStatus
    stored: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, bridge: Bridge, namespace: str, name: str) -> Pass | None:
        body = bridge.kube.get_slurmjob(namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return None
        stored = dict(body.get("status") or {})
        return cls(bridge, body, st.parse(stored), stored)

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])

    def spec(self) -> SlurmJobSpec:
        try:
            return SlurmJobSpec.model_validate(self.body.get("spec") or {})
        except ValidationError as e:
            raise InvalidStateError("InvalidSpec", str(e)) from e

    def stage(self, obs: st.Observation) -> None:
        generation = int(self.body["metadata"].get("generation") or 0)
        self.status = st.apply(self.status, obs, generation=generation, now=utcnow())

    def flush(self) -> None:
        """Write the status if it differs from what is stored; post the transitions' Events."""
        new = st.dump(self.status)
        if new == self.stored:
            return
        self.bridge.kube.patch_status(self.namespace, self.name, self.stored, new)
        for type_, reason, message in st.transition_events(st.parse(self.stored), self.status):
            self.bridge.kube.post_event(self.body, type_, reason, message)
        self.stored = new
        self.bridge.metrics.set_phase(self.namespace, self.name, self.status.phase)

    def record(self, obs: st.Observation) -> None:
        self.stage(obs)
        self.flush()


def submit_or_adopt(
    p: Pass, client: SlurmClient, spec: SlurmJobSpec, attempt: int, why: str = ""
) -> None:
    """Make sure attempt `attempt` exists in Slurm exactly once and its job id is recorded."""
    m = p.bridge.metrics
    if (p.status.submit_attempts or 0) < attempt:
        p.record(st.Submitting(attempt, why))
    found = sorted(client.find_by_comment(job_key(p.uid, attempt)), key=lambda j: j.job_id)
    if found:
        if len(found) > 1:
            log.warning(
                "%d Slurm jobs carry %s; adopting the first", len(found), job_key(p.uid, attempt)
            )
        m.submits.labels(result="adopted").inc()
        p.record(st.Submitted(found[0].job_id, attempt, adopted=True))
        return
    ident = Identity(p.namespace, p.name, p.uid, attempt)
    try:
        request = build_request(spec, ident, p.bridge.options.script)
    except ValueError as e:
        raise InvalidStateError("InvalidSpec", str(e)) from e
    try:
        job_id = client.submit(request)
    except SlurmRejected as e:
        m.submits.labels(result="rejected").inc()
        p.record(st.Rejected("SubmitRejected", "; ".join(e.messages) or e.message))
        return
    m.submits.labels(result="submitted").inc()
    p.bridge.hooks.after_submit(job_id)
    p.record(st.Submitted(job_id, attempt))


def poll(p: Pass, client: SlurmClient, spec: SlurmJobSpec) -> None:
    """Mirror the Slurm job; resubmit a failed one while backoffLimit allows."""
    job_id, attempt = p.status.job_id or 0, p.status.submit_attempts or 1
    info = client.get_job(job_id)
    if info is None:
        p.bridge.metrics.polls.labels(result="lost").inc()
        p.record(st.Lost(job_id))
        return
    p.bridge.metrics.polls.labels(result="ok").inc()
    p.stage(st.Polled(info))
    if p.status.phase == "Failed" and attempt <= spec.backoff_limit:
        submit_or_adopt(p, client, spec, attempt + 1, why=f"attempt {attempt}: {p.status.message}")
    else:
        p.flush()


def step(p: Pass) -> None:
    spec = p.spec()
    client = p.bridge.clients.for_connection(p.namespace, spec.slurm)
    if p.status.job_id is None:
        submit_or_adopt(p, client, spec, p.status.submit_attempts or 1)
    else:
        poll(p, client, spec)


def _message(e: Exception) -> str:
    if isinstance(e, SlurmError):
        return "; ".join(dict.fromkeys([e.message, *e.messages]))
    return str(getattr(e, "message", e))


def _fail_softly(p: Pass, e: Exception) -> None:
    """Show a contact problem in the status; an API that refuses even that is logged."""
    reason = str(getattr(e, "reason", type(e).__name__))
    p.bridge.metrics.error(reason)
    if p.status.job_id is None:
        p.bridge.metrics.submits.labels(result="error").inc()
    else:
        p.bridge.metrics.polls.labels(result="error").inc()
    p.status = st.parse(p.stored)  # drop what was staged but not written
    try:
        p.record(st.Unreachable(reason, _message(e)))
    except TransientError as again:
        log.warning("cannot record %s on %s/%s: %s", reason, p.namespace, p.name, again)


def reconcile(
    bridge: Bridge, namespace: str, name: str, *, retry: int = 0, quiet: bool = False
) -> None:
    """One pass. Transient trouble raises kopf.TemporaryError (unless `quiet`: the timer retries)."""
    with lock_for(namespace, name):
        try:
            p = Pass.read(bridge, namespace, name)
            if p is None or p.status.phase in TERMINAL_PHASES:
                if p is not None:
                    bridge.metrics.set_phase(namespace, name, p.status.phase)
                return
            try:
                step(p)
            except InvalidStateError as e:
                bridge.metrics.error(e.reason)
                p.record(st.Rejected(e.reason, e.message, by_slurm=False))
            except CONTACT_ERRORS as e:
                _fail_softly(p, e)
                raise
        except CONTACT_ERRORS as e:
            if not quiet:
                # The delay goes into the message, so the log shows the schedule is bounded.
                delay = bridge.backoff(retry)
                raise kopf.TemporaryError(
                    f"{_message(e)}; retrying in {delay:g}s", delay=delay
                ) from e
            log.info("%s/%s: %s; the poll timer retries", namespace, name, _message(e))
