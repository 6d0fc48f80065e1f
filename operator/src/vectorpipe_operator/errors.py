"""The two kinds of trouble a reconcile step can report, independent of Kopf.

`TransientError` is a transient fault (API 5xx/429, a dropped connection, S3
throttling, a manifest not visible yet): the pipeline stays in its phase, the
fault is shown in its Ready condition, and the handler is retried after a
bounded, growing delay. `InvalidStateError` is a state that no retry can fix (the
manifest is inconsistent, a child name is taken by an object we do not own,
a child was deleted mid-run): the pipeline turns Failed with that reason.
Steps raise these; `reconcile.py` alone turns them into Kopf's TemporaryError
and PermanentError, so the steps stay testable without a running operator.
Both carry a `Problem`, the plain data `status.py` turns into conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKOFF_BASE = 5.0
BACKOFF_MAX = 120.0


@dataclass(frozen=True)
class Problem:
    """A CamelCase reason (a condition reason) and a human-readable message."""

    reason: str
    message: str
    delay: float | None = None  # for transient ones: a server-given delay (Retry-After)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class ReconcileError(Exception):
    def __init__(self, reason: str, message: str, delay: float | None = None) -> None:
        self.problem = Problem(reason, message, delay)
        super().__init__(str(self.problem))


class TransientError(ReconcileError):
    """Transient: keep the phase, show it, retry later."""


class InvalidStateError(ReconcileError):
    """Permanent: the pipeline fails with this reason."""


def backoff(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Delay before retry number `attempt + 1`: 5, 10, 20, 40, 80, 120, 120, ... seconds."""
    return float(min(cap, base * 2 ** max(0, attempt)))
