"""Kopf handler registration, and nothing else (crate-operator's thin router).

`register` attaches each handler module's function to a Kopf registry with
its filters and its retry policy; importing this module registers them on
Kopf's default registry, which is what `kopf run -m vectorpipe_operator.main`
expects (`python -m vectorpipe_operator` uses the same registry). Change
handlers that reconcile share one policy: at most `RETRIES` attempts, a
`HANDLER_TIMEOUT` overall, and a `HANDLER_BACKOFF` for unexpected errors
(transient ones carry their own growing delay). The child watches track only
the status fields that matter, on children labelled as ours; the pod watch
is an event handler (Kopf stores nothing on the pods) on the Ray pods
labelled as ours.
"""

from __future__ import annotations

import kopf

from vectorpipe_api.meta import (
    GROUP,
    PIPELINE_PLURAL,
    RAY_GROUP,
    RAY_VERSION,
    RAYJOB_PLURAL,
    SLURMJOB_PLURAL,
    VERSION,
)
from vectorpipe_operator.config import PODS
from vectorpipe_operator.handlers import create, delete, pod, rayjob, slurmjob, startup
from vectorpipe_operator.reconcile import HANDLER_BACKOFF, HANDLER_TIMEOUT, RETRIES
from vectorpipe_operator.resources import LABEL_MANAGED_BY, LABEL_PIPELINE, MANAGER

OURS = {LABEL_PIPELINE: kopf.PRESENT}


def register(registry: kopf.OperatorRegistry) -> None:
    pipelines = (GROUP, VERSION, PIPELINE_PLURAL)
    rayjobs = (RAY_GROUP, RAY_VERSION, RAYJOB_PLURAL)
    slurmjobs = (GROUP, VERSION, SLURMJOB_PLURAL)
    retries, timeout, backoff = RETRIES, HANDLER_TIMEOUT, HANDLER_BACKOFF

    kopf.on.startup(registry=registry)(startup.on_startup)
    for decorator, hid in ((kopf.on.create, "create"), (kopf.on.resume, "resume")):
        decorator(
            *pipelines, id=hid, registry=registry, retries=retries, timeout=timeout, backoff=backoff
        )(create.on_create_or_resume)
    for field in ("status.jobDeploymentStatus", "status.jobStatus"):
        kopf.on.field(
            *rayjobs,
            field=field,
            labels=OURS,
            registry=registry,
            retries=retries,
            timeout=timeout,
            backoff=backoff,
        )(rayjob.on_rayjob_status)
    kopf.on.field(
        *slurmjobs,
        field="status.phase",
        labels=OURS,
        registry=registry,
        retries=retries,
        timeout=timeout,
        backoff=backoff,
    )(slurmjob.on_slurmjob_status)
    kopf.on.event(*pipelines, registry=registry)(delete.on_pipeline_event)
    kopf.on.event(
        *PODS, labels={LABEL_MANAGED_BY: MANAGER, LABEL_PIPELINE: kopf.PRESENT}, registry=registry
    )(pod.on_pod_event)


register(kopf.get_default_registry())
