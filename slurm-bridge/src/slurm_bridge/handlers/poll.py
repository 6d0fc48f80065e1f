"""Poll timer: mirror the Slurm job into status until it ends (and submit what is missing)."""

from __future__ import annotations

from typing import Any

import kopf

from slurm_bridge.context import from_memo
from slurm_bridge.reconcile import reconcile
from vectorpipe_api.slurmjob import TERMINAL_PHASES


def on_poll(*, name: str, namespace: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """One pass; Slurm trouble raises TemporaryError with a capped, doubling delay."""
    # Kopf passes `retry` (failures in a row) to timers too; its TimerFn type omits it.
    retry = int(kwargs.get("retry") or 0)
    reconcile(from_memo(memo), str(namespace), name, retry=retry)


def unfinished(status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    """The timer's filter: nothing to poll once the SlurmJob ended or is being deleted."""
    return status.get("phase") not in TERMINAL_PHASES and not meta.get("deletionTimestamp")
