"""Create/resume handler: a new VectorPipeline, or every existing one at start-up."""

from __future__ import annotations

from typing import Any

from vectorpipe_operator.k8s import kube
from vectorpipe_operator.reconcile import Context, reconcile


def on_create_or_resume(
    *, name: str, namespace: str | None, retry: int, reason: str, **_: Any
) -> None:
    """Create the children that are missing and bring the status up to date."""
    reconcile(Context(kube(), trigger=str(reason), attempt=retry), str(namespace), name)
