"""Start-up handler: Kopf settings, the Kubernetes client, the bridge context, metrics."""

from __future__ import annotations

from typing import Any

import kopf

from slurm_bridge import config


def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Runs once, before any resource handler."""
    config.start(settings, memo)


def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Runs once at exit: close the Slurm clients' connections."""
    config.stop(memo)
