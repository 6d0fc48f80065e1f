"""RayJob watch: stage 1's status changed (KubeRay or the test harness wrote it)."""

from __future__ import annotations

from typing import Any

import kopf

from vectorpipe_operator.config import context
from vectorpipe_operator.reconcile import reconcile
from vectorpipe_operator.resources import owning_pipeline


def on_rayjob_status(
    *, meta: kopf.Meta, namespace: str | None, retry: int, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile the pipeline that owns this RayJob (mirror status; maybe start stage 2)."""
    owner = owning_pipeline(meta)
    if owner is not None:
        reconcile(context(memo, "rayjob", retry), str(namespace), owner)
