"""Reconcile one VectorPipeline: ordered, idempotent steps, then one status write.

Every trigger (create, resume, a RayJob or SlurmJob status change) runs the
same pass, in the KubeRay style: read the pipeline fresh; stop if it is
already Succeeded/Failed; parse the spec; ensure the ConfigMap; ensure the
RayJob and observe it; once it SUCCEEDED, read the manifest; ensure the
SlurmJob and observe it; compute the new status purely and write it only if
it differs, posting an Event when the phase moves. Each ensure is
create-if-absent by a name derived from the pipeline, so a pass interrupted
anywhere and run again submits nothing twice. Once embedding is complete the
manifest recorded in status stands for stage 1 and the RayJob is no longer
consulted. Passes for one pipeline are serialised in-process; across
processes the status write carries the resourceVersion it was computed from.
A step's `TransientError` keeps the phase and shows the fault in Ready, then
becomes a Kopf TemporaryError with a growing, capped delay; on the handler's
last attempt it turns into Failed (RetriesExhausted). An `InvalidStateError`
(and any child's failure) turns the pipeline Failed and becomes a
PermanentError, once: a Failed pipeline is never reconciled again.
`VECTORPIPE_OPERATOR_TEST_CRASH_AFTER_CREATE=<Kind>` is a fault-injection hook
for the restart tests: the process exits right after creating that child,
before the status records it.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from vectorpipe_operator import builders
from vectorpipe_operator.errors import InvalidStateError, Problem, TransientError, backoff
from vectorpipe_operator.k8s import Kube
from vectorpipe_operator.manifests import StoreFactory, read_committed_manifest
from vectorpipe_operator.metrics import metrics
from vectorpipe_operator.resources import (
    COND_READY,
    PIPELINE_API_VERSION,
    PIPELINE_KIND,
    TERMINAL,
    InvalidSpecError,
    Pipeline,
    owned_by,
)
from vectorpipe_operator.status import (
    Observed,
    RayJobView,
    SlurmJobView,
    compute_status,
    condition,
    is_terminal,
    manifest_from_status,
)
from vectorpipe_workloads.storage import Store

# Handler policy, shared by every handler that reconciles (see main.py).
RETRIES = 8
HANDLER_TIMEOUT = 3600.0
HANDLER_BACKOFF = 10.0

CRASH_AFTER_CREATE_ENV = "VECTORPIPE_OPERATOR_TEST_CRASH_AFTER_CREATE"
CRASH_EXIT_CODE = 86

_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def _lock(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks[(namespace, name)]


def forget(namespace: str, name: str) -> None:
    """Drop per-pipeline state once a pipeline is gone."""
    with _locks_guard:
        _locks.pop((namespace, name), None)
    metrics().set_phase(namespace, name, None)


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Context:
    """How one pass was triggered and what it may use."""

    kube: Kube
    trigger: str
    attempt: int = 0  # Kopf's `retry`: attempts already made by this handler
    store_factory: StoreFactory = Store
    clock: Callable[[], str] = utcnow

    @property
    def last_attempt(self) -> bool:
        return self.attempt + 1 >= RETRIES


def _ensure_child(
    ctx: Context, p: Pipeline, desired: dict[str, Any], recorded: bool
) -> dict[str, Any]:
    """The child, created if absent; `recorded`: the status says it was created before."""
    kind, name = str(desired["kind"]), str(desired["metadata"]["name"])
    existing = ctx.kube.get(kind, p.namespace, name)
    if existing is None and recorded:
        # Creating it again would run the stage a second time; someone deleted it.
        raise InvalidStateError(f"{kind}Deleted", f"{kind} {name} was deleted before it finished")
    if existing is None:
        existing, created = ctx.kube.ensure(desired, p.uid)
        if created:
            ctx.kube.post_event(event_target(p), "Normal", "Created", f"created {kind} {name}")
            if os.environ.get(CRASH_AFTER_CREATE_ENV) == kind:
                os._exit(CRASH_EXIT_CODE)  # fault injection: die before the status write
    elif not owned_by(existing, p.uid):
        raise InvalidStateError(
            "ChildConflict",
            f"{kind} {p.namespace}/{name} exists and is not owned by this pipeline; "
            "delete it or rename the pipeline",
        )
    return existing


def _step_rayjob(ctx: Context, p: Pipeline, obs: Observed) -> None:
    recorded = bool((p.status.get("ray") or {}).get("rayJob"))
    obs.rayjob = RayJobView.from_object(_ensure_child(ctx, p, builders.build_rayjob(p), recorded))


def _step_slurmjob(ctx: Context, p: Pipeline, obs: Observed) -> None:
    assert obs.manifest is not None  # the caller's order guarantees it
    desired = builders.build_slurmjob(p, obs.manifest.uri)
    recorded = bool((p.status.get("slurm") or {}).get("slurmJob"))
    obs.slurmjob = SlurmJobView.from_object(_ensure_child(ctx, p, desired, recorded))


def event_target(p: Pipeline) -> dict[str, Any]:
    """The object reference Kopf needs to post an Event on the pipeline."""
    return {
        "apiVersion": PIPELINE_API_VERSION,
        "kind": PIPELINE_KIND,
        "metadata": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
    }


def observe(ctx: Context, p: Pipeline) -> Observed:
    """Run the steps in order; stop at the first problem and record it."""
    obs = Observed(manifest=manifest_from_status(p.status))
    try:
        ctx.kube.ensure(builders.build_configmap(p), p.uid)
        if obs.manifest is None:
            _step_rayjob(ctx, p, obs)
            if obs.rayjob is None or not obs.rayjob.succeeded:
                return obs
            obs.manifest = read_committed_manifest(p.spec, ctx.store_factory)
        _step_slurmjob(ctx, p, obs)
    except TransientError as e:
        if ctx.last_attempt:
            obs.failure = Problem("RetriesExhausted", f"gave up after {RETRIES} attempts: {e}")
        else:
            obs.waiting = e.problem
    except InvalidStateError as e:
        obs.failure = e.problem
    return obs


def _publish(ctx: Context, body: Mapping[str, Any], new: dict[str, Any]) -> None:
    old = body.get("status") or {}
    if new == old:
        return
    ctx.kube.replace_status(body, new)
    before, after = old.get("phase"), new.get("phase")
    if before != after:
        ready = condition(new, COND_READY)
        kind = "Warning" if after == "Failed" else "Normal"
        msg = str(ready.get("message") or after)
        ctx.kube.post_event(body, kind, str(after), msg)


def reconcile(ctx: Context, namespace: str, name: str) -> str | None:
    """One pass for one pipeline; returns its phase (None if it is gone)."""
    with _lock(namespace, name):
        try:
            phase = _reconcile(ctx, namespace, name)
        except kopf.TemporaryError as e:
            metrics().reconciled(ctx.trigger, "retry")
            metrics().error("transient", str(e).split(":", 1)[0])
            raise
        except kopf.PermanentError as e:
            metrics().reconciled(ctx.trigger, "failed")
            metrics().error("permanent", str(e).split(":", 1)[0])
            raise
        except Exception as e:
            metrics().reconciled(ctx.trigger, "error")
            metrics().error("unexpected", type(e).__name__)
            raise
        metrics().reconciled(ctx.trigger, "ok")
        return phase


def _reconcile(ctx: Context, namespace: str, name: str, fresh: bool = False) -> str | None:
    try:
        body = ctx.kube.get_pipeline(namespace, name)
    except TransientError as e:
        raise _temporary(e.problem, ctx.attempt) from e
    if body is None:
        return None
    meta, old = body.get("metadata") or {}, body.get("status") or {}
    generation = int(meta.get("generation") or 1)
    if is_terminal(old, generation):
        metrics().set_phase(namespace, name, str(old["phase"]))
        return str(old["phase"])
    output_uri: str | None = None
    try:
        pipeline = Pipeline.from_body(body)
        output_uri = pipeline.spec.output.uri
        observed = observe(ctx, pipeline)
    except InvalidSpecError as e:
        observed = Observed(failure=Problem("InvalidSpec", str(e)))
    new = compute_status(
        generation=generation, old=old, output_uri=output_uri, observed=observed, now=ctx.clock()
    )
    try:
        _publish(ctx, body, new)
    except TransientError as e:
        # Kopf's own annotation patches race with the status write; a pass on a
        # fresh read almost always succeeds, so retry once before backing off.
        if e.problem.reason == "Conflict" and not fresh:
            return _reconcile(ctx, namespace, name, fresh=True)
        raise _temporary(e.problem, ctx.attempt) from e
    phase = str(new["phase"])
    metrics().set_phase(namespace, name, phase)
    if phase == "Failed" and old.get("phase") not in TERMINAL:
        ready = condition(new, COND_READY)
        raise kopf.PermanentError(f"{ready.get('reason')}: {ready.get('message')}")
    if observed.waiting is not None:
        raise _temporary(observed.waiting, ctx.attempt)
    return phase


def _temporary(problem: Problem, attempt: int) -> kopf.TemporaryError:
    return kopf.TemporaryError(str(problem), delay=problem.delay or backoff(attempt))
