"""Deleting a SlurmJob: cancel its Slurm job first, then let the object go.

The bridge's finalizer holds a deleted SlurmJob until `finalize` has run. A
SlurmJob that already ended, or that never got as far as a submission (its
status records no attempt: the write-ahead in `reconcile` makes this
reliable), is let go at once. Otherwise every live Slurm job of the current
attempt is cancelled: the recorded job id, plus any job carrying the attempt's
key in its comment (a submission whose id never reached the status). A job
Slurm no longer knows is fine. When Slurm cannot be reached the deletion is
retried with a capped backoff, forever, because letting go would leave the job
running unseen. The escape hatch, for a cluster that is gone for good: set the
annotation ``vectorpipe.io/skip-cancel: "true"`` on the SlurmJob and the
finalizer lets go without cancelling (or, with no bridge running at all,
remove the ``vectorpipe.io/slurm-bridge`` finalizer by hand).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from slurm_bridge import status as st
from slurm_bridge.context import Bridge, forget, lock_for
from slurm_bridge.errors import SlurmAuthError, SlurmNotFound, SlurmRejected, SlurmUnavailable
from slurm_bridge.script import job_key
from vectorpipe_api.slurmjob import TERMINAL_PHASES, SlurmJobSpec
from vectorpipe_kopf.errors import TransientError

log = logging.getLogger(__name__)

FINALIZER = "vectorpipe.io/slurm-bridge"
SKIP_CANCEL_ANNOTATION = "vectorpipe.io/skip-cancel"
RETRYABLE = (SlurmUnavailable, SlurmAuthError, SlurmRejected, TransientError)


def skip_requested(meta: Mapping[str, Any]) -> bool:
    value = (meta.get("annotations") or {}).get(SKIP_CANCEL_ANNOTATION, "")
    return str(value).strip().lower() in ("true", "1", "yes")


def cancel_live_jobs(bridge: Bridge, body: Mapping[str, Any]) -> list[int]:
    """scancel what may still run for this SlurmJob; returns the job ids cancelled."""
    meta, status = body["metadata"], st.parse(body.get("status"))
    attempt = status.submit_attempts or 0
    if status.phase in TERMINAL_PHASES or (attempt == 0 and status.job_id is None):
        return []
    try:
        spec = SlurmJobSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return []  # never submittable, so never submitted
    client = bridge.clients.for_connection(str(meta["namespace"]), spec.slurm)
    ids = {status.job_id} if status.job_id is not None else set()
    key = job_key(str(meta["uid"]), max(attempt, 1))
    ids |= {j.job_id for j in client.find_by_comment(key) if not j.is_terminal}
    cancelled = []
    for job_id in sorted(ids):
        try:
            client.cancel(job_id)
            cancelled.append(job_id)
        except SlurmNotFound:
            bridge.metrics.cancels.labels(result="gone").inc()
    return cancelled


def finalize(
    bridge: Bridge, namespace: str, name: str, body: Mapping[str, Any], *, retry: int = 0
) -> None:
    """Cancel the SlurmJob's live Slurm jobs; raise kopf.TemporaryError while Slurm is away."""
    with lock_for(namespace, name):
        try:
            fresh = bridge.kube.get_slurmjob(namespace, name) or dict(body)
            if skip_requested(fresh["metadata"]):
                bridge.metrics.cancels.labels(result="skipped").inc()
                log.warning(
                    "%s/%s: %s set, not cancelling", namespace, name, SKIP_CANCEL_ANNOTATION
                )
            else:
                for job_id in cancel_live_jobs(bridge, fresh):
                    bridge.metrics.cancels.labels(result="ok").inc()
                    bridge.kube.post_event(fresh, "Normal", "Cancelled", f"scancel {job_id}")
        except RETRYABLE as e:
            reason = str(getattr(e, "reason", type(e).__name__))
            bridge.metrics.error(reason)
            bridge.metrics.cancels.labels(result="error").inc()
            delay = bridge.backoff(retry, cap=bridge.options.delete_backoff)
            raise kopf.TemporaryError(
                f"cannot cancel the Slurm job yet ({reason}: {e}); to delete without cancelling, "
                f"annotate the SlurmJob {SKIP_CANCEL_ANNOTATION}=true",
                delay=delay,
            ) from e
    bridge.metrics.set_phase(namespace, name, None)
    forget(namespace, name)
