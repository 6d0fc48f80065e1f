"""Event watch: a SlurmJob vanished (also when its finalizer was removed by hand)."""

from __future__ import annotations

from typing import Any

import kopf

from slurm_bridge.context import forget, from_memo


def on_deleted(*, name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Forget a deleted SlurmJob: its lock and its place in the jobs-by-phase gauge."""
    from_memo(memo).metrics.set_phase(str(namespace), name, None)
    forget(str(namespace), name)


def deleted(type: str, **_: Any) -> bool:
    """The watch's filter: only the final DELETED event."""
    return type == "DELETED"
