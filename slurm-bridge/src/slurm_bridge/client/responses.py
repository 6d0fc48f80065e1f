"""Turning a slurmrestd HTTP answer into a body or one of the typed errors.

slurmrestd's status codes alone are not enough. Slurm 22.05 (v0.0.38) answers
almost every Slurm-side failure with HTTP 500 and puts the real cause in
``errors[]``: an invalid job id (2017), an invalid partition (2000), or, for both
a refused token and an unreachable slurmctld, the same ``-1 "Unspecified error"``.
Slurm 23.02+ maps some causes to statuses (404 for 2017, 502 when slurmctld is
unreachable, 511 for authentication errors). `classify` reads both: the Slurm
error numbers first, then the status. The ambiguous 22.05 case is reported as
`SlurmUnavailable` with `maybe_auth` set so the client re-reads its token once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slurm_bridge.client.adapter import ErrorEntry
from slurm_bridge.errors import (
    SlurmAuthError,
    SlurmError,
    SlurmNotFound,
    SlurmRejected,
    SlurmUnavailable,
)

# slurm/slurm_errno.h
INVALID_JOB_ID = 2017
ALREADY_DONE = 2021
ZERO_BYTES_SENT = 5005
AUTH_ERRORS = frozenset({1007, *range(6000, 6010)})  # PROTOCOL_AUTHENTICATION_ERROR, ESLURM_AUTH_*
# The request never reached slurmctld: safe to repeat even a submit.
CONNECT_ERRORS = frozenset({1001, 1800, 1804})
COMM_ERRORS = CONNECT_ERRORS | frozenset(
    {1002, 1003, 1004, 1801, 1802, 1803, 1805, 5003, 5004, ZERO_BYTES_SENT, 7000}
)


@dataclass(frozen=True)
class Verdict:
    """A classified failure: the error to raise and whether a fresh token might help."""

    error: SlurmError
    maybe_auth: bool = False


def _summary(entries: Sequence[ErrorEntry], status: int, text: str) -> list[str]:
    messages = [e.message for e in entries if e.message]
    if not messages:
        snippet = " ".join(text.split())[:200]
        messages = [f"HTTP {status}" + (f": {snippet}" if snippet else "")]
    return messages


def classify(
    status: int, entries: Sequence[ErrorEntry], text: str = "", what: str = "request"
) -> Verdict | None:
    """None when the answer is a success; otherwise the error to raise."""
    numbers = [e.number for e in entries if e.number is not None]
    known = set(numbers)
    messages = _summary(entries, status, text)
    detail = f"{what}: {'; '.join(messages)}"

    def err(cls: type[SlurmError], message: str) -> SlurmError:
        return cls(message, status=status, error_numbers=numbers, messages=messages)

    if status < 400 and not known - {0}:
        return None
    if status in (401, 403, 511) or known & AUTH_ERRORS:
        return Verdict(err(SlurmAuthError, f"Slurm refused the token ({detail})"))
    if INVALID_JOB_ID in known:
        return Verdict(err(SlurmNotFound, detail))
    if status == 404:
        # A 404 without Slurm's 2017 is an unknown URL (wrong version or proxy),
        # never "the job is gone": callers must not mistake it for a purged job.
        return Verdict(err(SlurmRejected, f"slurmrestd does not serve this path ({detail})"))
    if known & COMM_ERRORS or status in (502, 503, 504):
        return Verdict(
            SlurmUnavailable(
                f"slurmctld unreachable ({detail})"
                + (
                    "; slurmctld also hangs up like this on a refused token"
                    if ZERO_BYTES_SENT in known
                    else ""
                ),
                status=status,
                error_numbers=numbers,
                messages=messages,
                request_sent=not known or not known <= CONNECT_ERRORS,
            ),
            # 22.05 answers a submit with a refused token with 5005 (slurmctld hung up).
            maybe_auth=ZERO_BYTES_SENT in known,
        )
    if status >= 500 and (not entries or known <= {-1}):
        return Verdict(
            SlurmUnavailable(
                f"slurmrestd failed without a Slurm error code ({detail}); on Slurm 22.05 "
                "this also means slurmctld refused the token",
                status=status,
                error_numbers=numbers,
                messages=messages,
            ),
            maybe_auth=True,
        )
    if status < 400:
        # A 200 whose errors[] holds codes: Slurm did the work but complained
        # (e.g. a queued job whose partition cannot run it yet); not a failure.
        return None
    return Verdict(err(SlurmRejected, f"Slurm rejected the {detail}"))
