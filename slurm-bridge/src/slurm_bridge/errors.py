"""Typed errors of the Slurm clients, shared by the REST and the CLI backend.

Callers branch on the class, never on message text: `SlurmAuthError` (token
missing, malformed, expired or refused), `SlurmNotFound` (Slurm does not know the
job, e.g. it was purged after MinJobAge), `SlurmRejected` (Slurm understood the
request and said no; `messages` holds Slurm's own words from ``errors[]`` or the
command's stderr) and `SlurmUnavailable` (connection refused, timeouts, 5xx,
slurmctld unreachable). Only `SlurmUnavailable` is retried by the clients; when
it escapes, the bounded retries are already spent. Each error carries the HTTP
status and Slurm error numbers when there were any, for logs and conditions.
"""

from __future__ import annotations

from collections.abc import Sequence


class SlurmError(Exception):
    """Base class: something went wrong talking to Slurm."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_numbers: Sequence[int] = (),
        messages: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_numbers = tuple(error_numbers)
        self.messages = tuple(messages) if messages else (message,)

    @property
    def reason(self) -> str:
        """A CamelCase reason for Kubernetes conditions, e.g. ``SlurmUnavailable``."""
        return type(self).__name__


class SlurmAuthError(SlurmError):
    """The token is missing, malformed, expired, or Slurm refused it."""


# The names are the bridge's public vocabulary (conditions show them), hence no Error suffix.
class SlurmNotFound(SlurmError):  # noqa: N818
    """Slurm does not know the job (never existed or already purged)."""


class SlurmRejected(SlurmError):  # noqa: N818
    """Slurm refused the request; `messages` carries Slurm's explanation."""


class SlurmUnavailable(SlurmError):  # noqa: N818
    """slurmrestd or slurmctld could not be reached or answered 5xx; retrying may help.

    `request_sent` is False only when the request provably never reached the
    server (connection refused); a submit is retried only then, because after a
    timeout the job may exist and a second submit would duplicate it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_numbers: Sequence[int] = (),
        messages: Sequence[str] = (),
        request_sent: bool = True,
    ) -> None:
        super().__init__(message, status=status, error_numbers=error_numbers, messages=messages)
        self.request_sent = request_sent
