"""Start-up handler: configure Kopf, the Kubernetes client and the metrics endpoint."""

from __future__ import annotations

from typing import Any

import kopf

from vectorpipe_operator import config


def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Runs once, before any resource handler."""
    config.start(settings, memo)
