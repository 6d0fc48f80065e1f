"""The two kinds of trouble a reconcile step can report, independent of Kopf.

`TransientError` is a fault that may pass (the API answers 5xx or 429, a
connection drops, a Secret or an object is not there yet): the resource keeps
its phase, the fault shows in a condition, and the pass is retried after a
bounded, growing delay (`capped_backoff`). `InvalidStateError` is a state no
retry can fix (a child name taken by an object we do not own, a spec the
model refuses, a child deleted mid-run): the resource turns Failed with that
reason. Steps raise these; each controller's reconcile module alone turns
them into Kopf's TemporaryError and PermanentError, so steps stay testable
without a running operator. Both carry a `Problem`, the plain data the
status computations turn into conditions.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def reason(self) -> str:
        return self.problem.reason

    @property
    def message(self) -> str:
        return self.problem.message


class TransientError(ReconcileError):
    """Transient: keep the phase, show it, retry later."""


class InvalidStateError(ReconcileError):
    """Permanent: the resource fails with this reason."""


def capped_backoff(attempt: int, base: float, cap: float) -> float:
    """Delay before retry number `attempt + 1`: base, 2x, 4x, ... capped at `cap`."""
    return float(min(cap, base * 2 ** max(0, min(attempt, 30))))
