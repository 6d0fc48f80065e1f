"""Deletion: the pipeline is gone; its children go with it through owner references.

No finalizer is ever added: nothing outside Kubernetes belongs to the
operator (the Slurm job belongs to the SlurmJob, whose own finalizer in the
slurm-bridge cancels it), so the garbage collector does all the work. This
handler only drops the operator's in-memory state for the pipeline.
"""

from __future__ import annotations

from typing import Any

from vectorpipe_operator.reconcile import forget


def on_pipeline_event(*, type: str, name: str, namespace: str | None, **_: Any) -> None:
    """Forget a deleted pipeline (metrics gauge, per-pipeline lock)."""
    if type == "DELETED":
        forget(str(namespace), name)
