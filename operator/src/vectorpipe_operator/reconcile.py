"""Reconcile one VectorPipeline: ordered, idempotent steps, then one status write.

Every trigger (create, resume, a RayJob or SlurmJob status change) runs the
same pass, in the KubeRay style: read the pipeline fresh; stop if this
generation is already Succeeded/Failed; parse the spec; if `spec.runId`
changed, delete the previous run's children and start from an empty status;
ensure the ConfigMap; ensure the RayJob and observe it, and while it runs
list its Ray pods and diagnose them (`pods`); once it SUCCEEDED,
read the manifest; ensure the SlurmJob and observe it; compute the new
status purely and write it only if it differs, posting an Event when the
phase moves. Each ensure is one GET and, if absent, a create by a name
derived from the pipeline and its run, so a pass interrupted anywhere and run
again submits nothing twice. Once embedding is complete the manifest recorded
in status stands for stage 1 and the RayJob is no longer consulted; a RayJob
that vanished after it was recorded (KubeRay's delete-after-finish while the
operator was down, or a user) is not recreated: a manifest this run committed
wins, and without one the pipeline fails with RayJobDeleted. Passes for one
pipeline are serialised in-process; across processes Kopf peering keeps one
active replica and the status write carries the resourceVersion it was
computed from.
A step's `TransientError` keeps the phase and shows the fault in Ready, then
becomes a Kopf TemporaryError with a growing, capped delay; on the handler's
last attempt it turns into Failed (RetriesExhausted). An `InvalidStateError`
(and any child's failure) turns the pipeline Failed and becomes a
PermanentError, once: a Failed pipeline is never reconciled again (until a
new run). A Ray container stuck past the rule in `pods` fails the pipeline
with the kubelet's reason, and the run is ended like a previous run: the
RayJob is deleted (KubeRay would otherwise wait for its cluster for ever), by
the pass that wrote Failed and, should that delete fail, by any later pass
over the failed pipeline. A stuck container still within its grace period
asks for one more pass when the grace is over (`Context.recheck`), since it
may never change again. `Hooks` lets the restart tests inject a crash right
after a create.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from vectorpipe_api.meta import API_VERSION, PIPELINE_KIND, RAYJOB_KIND, SLURMJOB_KIND
from vectorpipe_api.pipeline_names import configmap_name, rayjob_name, slurmjob_name
from vectorpipe_api.pipeline_status import COND_READY, TERMINAL
from vectorpipe_kopf.errors import InvalidStateError, Problem, TransientError, capped_backoff
from vectorpipe_kopf.locks import ObjectLocks
from vectorpipe_operator import builders, pods
from vectorpipe_operator.k8s import KubeApi
from vectorpipe_operator.manifests import StoreFactory, read_committed_manifest
from vectorpipe_operator.metrics import metrics
from vectorpipe_operator.resources import LABEL_PIPELINE_UID, InvalidSpecError, Pipeline, owned_by
from vectorpipe_operator.status import (
    Observed,
    compute_status,
    condition,
    failed_on_stuck_pod,
    is_terminal,
    manifest_from_status,
)
from vectorpipe_operator.views import RayJobView, SlurmJobView
from vectorpipe_workloads.storage import Store

# Handler policy, shared by every handler that reconciles (see main.py).
RETRIES = 8
HANDLER_TIMEOUT = 3600.0
HANDLER_BACKOFF = 10.0
BACKOFF_BASE = 5.0
BACKOFF_MAX = 120.0

_locks = ObjectLocks()


def forget(namespace: str, name: str) -> None:
    """Drop per-pipeline state once a pipeline is gone."""
    _locks.forget(namespace, name)
    metrics().set_phase(namespace, name, None)


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backoff(attempt: int) -> float:
    """Delay before retry number `attempt + 1`: 5, 10, 20, 40, 80, 120, 120, ... seconds."""
    return capped_backoff(attempt, BACKOFF_BASE, BACKOFF_MAX)


def _nothing(kind: str) -> None:
    return None


def _no_recheck(namespace: str, name: str, delay: float) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    """Seams for fault-injection tests (a crash right after a create); no-ops in production."""

    after_create: Callable[[str], None] = _nothing


@dataclass(frozen=True)
class Context:
    """How one pass was triggered and what it may use."""

    kube: KubeApi
    trigger: str
    attempt: int = 0  # Kopf's `retry`: attempts already made by this handler
    store_factory: StoreFactory = Store
    clock: Callable[[], str] = utcnow
    hooks: Hooks = field(default_factory=Hooks)
    # Grace of a Ray container that cannot start (see `pods`), in seconds.
    pod_start_timeout: float = pods.POD_START_TIMEOUT
    # Ask for one more pass of (namespace, name) in `delay` seconds.
    recheck: Callable[[str, str, float], None] = _no_recheck

    @property
    def last_attempt(self) -> bool:
        return self.attempt + 1 >= RETRIES


def _conflict(kind: str, namespace: str, name: str) -> InvalidStateError:
    return InvalidStateError(
        "ChildConflict",
        f"{kind} {namespace}/{name} exists and is not owned by this pipeline; "
        "delete it or rename the pipeline",
    )


def _ensure_child(
    ctx: Context,
    p: Pipeline,
    desired: dict[str, Any],
    existing: dict[str, Any] | None,
    announce: bool = True,
) -> dict[str, Any]:
    """The child as it is (`existing`, from this pass's one GET), created if absent.

    Never updates an existing child: children are built from a spec frozen
    for the run, and re-submitting a RayJob or SlurmJob is exactly what must
    not happen. `announce`: post a Created Event (not for the ConfigMap).
    """
    kind, name = str(desired["kind"]), str(desired["metadata"]["name"])
    if existing is None:
        existing, created = ctx.kube.create(desired)
        if created:
            if announce:
                ctx.kube.post_event(event_target(p), "Normal", "Created", f"created {kind} {name}")
            ctx.hooks.after_create(kind)
            return existing
    if not owned_by(existing, p.uid):
        raise _conflict(kind, p.namespace, name)
    return existing


def _step_configmap(ctx: Context, p: Pipeline) -> None:
    desired = builders.build_configmap(p)
    existing = ctx.kube.get("ConfigMap", p.namespace, p.configmap_name)
    _ensure_child(ctx, p, desired, existing, announce=False)


def _step_rayjob(ctx: Context, p: Pipeline, obs: Observed) -> None:
    existing = ctx.kube.get(RAYJOB_KIND, p.namespace, p.rayjob_name)
    recorded = bool((p.status.get("ray") or {}).get("rayJob"))
    if existing is None and recorded:
        # Creating it again would run stage 1 a second time. KubeRay's
        # delete-after-finish, or a user, removed it; if stage 1 committed its
        # manifest first, the run goes on from there.
        try:
            obs.manifest = read_committed_manifest(p.spec, p.run, ctx.store_factory)
        except TransientError as e:
            if e.reason != "ManifestNotVisible":
                raise
            raise InvalidStateError(
                "RayJobDeleted",
                f"RayJob {p.rayjob_name} was deleted before it finished "
                "and no manifest of this run was committed",
            ) from e
        return
    desired = builders.build_rayjob(p)
    obs.rayjob = RayJobView.from_object(_ensure_child(ctx, p, desired, existing))
    if obs.rayjob.succeeded:
        obs.manifest = read_committed_manifest(p.spec, p.run, ctx.store_factory)
    elif obs.rayjob.deployment_status and not obs.rayjob.failed:
        _step_pods(ctx, p, obs)


def _step_pods(ctx: Context, p: Pipeline, obs: Observed) -> None:
    """Diagnose the running RayJob's pods: fail on a final fault, else maybe ask to look again."""
    assert obs.rayjob is not None  # called by _step_rayjob only
    found = ctx.kube.list_pods(p.namespace, {LABEL_PIPELINE_UID: p.uid})
    obs.pods = pods.diagnose(found, obs.rayjob.cluster_name)
    fault = obs.pods.fault
    if fault is None:
        return
    left = pods.remaining(fault, ctx.clock(), ctx.pod_start_timeout, p.spec.ray.backoff_limit)
    if left == 0.0:
        obs.failure = fault.problem
    elif left is not None:
        obs.recheck_after = left


def _step_slurmjob(ctx: Context, p: Pipeline, obs: Observed) -> None:
    assert obs.manifest is not None  # the caller's order guarantees it
    existing = ctx.kube.get(SLURMJOB_KIND, p.namespace, p.slurmjob_name)
    recorded = bool((p.status.get("slurm") or {}).get("slurmJob"))
    if existing is None and recorded:
        # Creating it again would run stage 2 a second time; someone deleted it.
        raise InvalidStateError(
            "SlurmJobDeleted", f"SlurmJob {p.slurmjob_name} was deleted before it finished"
        )
    desired = builders.build_slurmjob(p, obs.manifest.uri)
    obs.slurmjob = SlurmJobView.from_object(_ensure_child(ctx, p, desired, existing))


def event_target(p: Pipeline) -> dict[str, Any]:
    """The object reference Kopf needs to post an Event on the pipeline."""
    return {
        "apiVersion": API_VERSION,
        "kind": PIPELINE_KIND,
        "metadata": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
    }


def end_previous_run(ctx: Context, p: Pipeline, previous_run_id: str | None) -> None:
    """Delete what the previous run created (its RayJob, SlurmJob, ConfigMap), if ours.

    Deleting them stops the previous run: KubeRay tears its Ray cluster down
    and the slurm-bridge's finalizer cancels its Slurm job, so
    two runs never write the same output at once.
    """
    for kind, name in (
        (SLURMJOB_KIND, slurmjob_name(p.name, previous_run_id)),
        (RAYJOB_KIND, rayjob_name(p.name, previous_run_id)),
        ("ConfigMap", configmap_name(p.name, previous_run_id)),
    ):
        child = ctx.kube.get(kind, p.namespace, name)
        if (
            child is not None
            and owned_by(child, p.uid)
            and ctx.kube.delete(kind, p.namespace, name)
        ):
            ctx.kube.post_event(
                event_target(p), "Normal", "PreviousRunEnded", f"deleted {kind} {name}"
            )


def end_stuck_run(ctx: Context, body: Mapping[str, Any]) -> None:
    """Delete the RayJob of a run that failed on a stuck Ray pod, if it is still there.

    KubeRay would keep the cluster waiting for its pod for ever; deleting the
    RayJob (in the background) takes its RayCluster, pods and submitter Job
    with it, as `end_previous_run` does for a replaced run.
    """
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    name = str((status.get("ray") or {}).get("rayJob") or "")
    if not name:
        return
    namespace, uid = str(meta.get("namespace")), str(meta.get("uid"))
    child = ctx.kube.get(RAYJOB_KIND, namespace, name)
    if child is not None and owned_by(child, uid) and ctx.kube.delete(RAYJOB_KIND, namespace, name):
        reason = condition(status, COND_READY).get("reason")
        ctx.kube.post_event(
            body, "Normal", "StuckRunEnded", f"deleted RayJob {name} after {reason}"
        )


def observe(ctx: Context, p: Pipeline) -> Observed:
    """Run the steps in order; stop at the first problem and record it."""
    obs = Observed(manifest=manifest_from_status(p.status))
    try:
        _step_configmap(ctx, p)
        if obs.manifest is None:
            _step_rayjob(ctx, p, obs)
            if obs.manifest is None:
                return obs
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
    with _locks.lock_for(namespace, name):
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
        if failed_on_stuck_pod(old):
            _end_stuck_run(ctx, body)
        return str(old["phase"])
    output_uri: str | None = None
    run_id: str | None = None
    prior: Mapping[str, Any] = old
    try:
        pipeline = Pipeline.from_body(body)
        output_uri, run_id = pipeline.spec.output.uri, pipeline.run_id
        if old and old.get("runId") != run_id:
            # spec.runId changed: a new run, which starts from an empty status
            # once the previous one is gone (the status keeps naming the
            # previous run until then, so an interrupted cleanup is redone).
            try:
                end_previous_run(ctx, pipeline, old.get("runId"))
            except TransientError as e:
                raise _temporary(e.problem, ctx.attempt) from e
            prior = {}
            pipeline = dataclasses.replace(pipeline, status={})
        observed = observe(ctx, pipeline)
    except InvalidSpecError as e:
        observed = Observed(failure=Problem("InvalidSpec", str(e)))
    new = compute_status(
        generation=generation,
        run_id=run_id,
        old=prior,
        output_uri=output_uri,
        observed=observed,
        now=ctx.clock(),
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
    if failed_on_stuck_pod(new):
        _end_stuck_run(ctx, {**body, "status": new})
    elif observed.recheck_after is not None:
        ctx.recheck(namespace, name, observed.recheck_after)
    if phase == "Failed" and (prior.get("phase") not in TERMINAL):
        ready = condition(new, COND_READY)
        raise kopf.PermanentError(f"{ready.get('reason')}: {ready.get('message')}")
    if observed.waiting is not None:
        raise _temporary(observed.waiting, ctx.attempt)
    return phase


def _end_stuck_run(ctx: Context, body: Mapping[str, Any]) -> None:
    try:
        end_stuck_run(ctx, body)
    except TransientError as e:
        raise _temporary(e.problem, ctx.attempt) from e


def _temporary(problem: Problem, attempt: int) -> kopf.TemporaryError:
    return kopf.TemporaryError(str(problem), delay=problem.delay or backoff(attempt))
