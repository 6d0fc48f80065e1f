"""Deletion handler (holds the finalizer): scancel a SlurmJob's live Slurm job, then let go."""

from __future__ import annotations

from typing import Any

import kopf

from slurm_bridge.context import from_memo
from slurm_bridge.finalize import finalize


def on_delete(
    *, name: str, namespace: str | None, body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any
) -> None:
    """Cancel in Slurm first; while Slurm is unreachable, retry with a capped backoff."""
    finalize(from_memo(memo), str(namespace), name, dict(body), retry=retry)
