"""SlurmJob watch: stage 2's phase changed (the slurm-bridge or a test wrote it)."""

from __future__ import annotations

from typing import Any

import kopf

from vectorpipe_operator.k8s import kube
from vectorpipe_operator.reconcile import Context, reconcile
from vectorpipe_operator.resources import owning_pipeline


def on_slurmjob_status(*, meta: kopf.Meta, namespace: str | None, retry: int, **_: Any) -> None:
    """Reconcile the pipeline that owns this SlurmJob (mirror status; maybe finish)."""
    owner = owning_pipeline(meta)
    if owner is not None:
        ctx = Context(kube(), trigger="slurmjob", attempt=retry)
        reconcile(ctx, str(namespace), owner)
