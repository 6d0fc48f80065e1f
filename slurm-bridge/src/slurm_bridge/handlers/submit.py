"""Create/resume handler: a new SlurmJob, or every existing one when the bridge starts."""

from __future__ import annotations

from typing import Any

import kopf

from slurm_bridge.context import from_memo
from slurm_bridge.reconcile import reconcile


def on_create_or_resume(*, name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Submit (or adopt) the Slurm job now; Slurm trouble is left to the poll timer's backoff."""
    reconcile(from_memo(memo), str(namespace), name, quiet=True)
