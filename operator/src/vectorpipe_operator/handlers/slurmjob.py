"""SlurmJob watch: stage 2's phase changed (the slurm-bridge or a test wrote it)."""

from __future__ import annotations

from typing import Any

import kopf

from vectorpipe_operator.config import context
from vectorpipe_operator.reconcile import reconcile
from vectorpipe_operator.resources import owning_pipeline


def on_slurmjob_status(
    *, meta: kopf.Meta, namespace: str | None, retry: int, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile the pipeline that owns this SlurmJob (mirror status; maybe finish)."""
    owner = owning_pipeline(meta)
    if owner is not None:
        reconcile(context(memo, "slurmjob", retry), str(namespace), owner)
