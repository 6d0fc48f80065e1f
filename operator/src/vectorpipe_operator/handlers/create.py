"""Create/resume handler: a new VectorPipeline, or every existing one at start-up."""

from __future__ import annotations

from typing import Any

import kopf

from vectorpipe_operator.config import context
from vectorpipe_operator.reconcile import reconcile


def on_create_or_resume(
    *, name: str, namespace: str | None, retry: int, reason: str, memo: kopf.Memo, **_: Any
) -> None:
    """Create the children that are missing and bring the status up to date."""
    reconcile(context(memo, str(reason), retry), str(namespace), name)
