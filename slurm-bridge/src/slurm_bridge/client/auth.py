"""JWT plumbing for slurmrestd: token providers and a local sanity check of a token.

A token provider is any zero-argument callable returning the current token; the
REST client calls it for every request, so a rotated Secret is picked up without
restarting anything. `file_token` reads a mounted Kubernetes Secret key (kubelet
swaps the file atomically on rotation) and `static_token` wraps a fixed string.
`check_token` decodes the token's claims without verifying the signature (only
slurmctld holds the key) to refuse, before any request, what can never work: a
string that is not a JWT, or one whose ``exp`` has passed. Slurm 22.05's
slurmrestd reports a refused token exactly like an unreachable slurmctld
("Unspecified error", HTTP 500), so this is the only way an expired token shows
up there as an authentication problem rather than an outage.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slurm_bridge.errors import SlurmAuthError

TokenProvider = Callable[[], str]

# Clock skew we tolerate between us and slurmctld before calling a token expired.
EXPIRY_LEEWAY_S = 5


def static_token(token: str) -> TokenProvider:
    return lambda: token


def file_token(path: str | Path) -> TokenProvider:
    """Read the token from a file on every call (a mounted Secret rotates in place)."""
    p = Path(path)

    def read() -> str:
        try:
            text = p.read_text().strip()
        except OSError as exc:
            raise SlurmAuthError(f"cannot read the Slurm token from {p}: {exc}") from exc
        # Secrets are often created from `scontrol token` output verbatim.
        return text.removeprefix("SLURM_JWT=")

    return read


def token_claims(token: str) -> dict[str, Any]:
    """The JWT payload, unverified; raises SlurmAuthError when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise SlurmAuthError("the Slurm token is not a JWT (expected header.payload.signature)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise SlurmAuthError(f"the Slurm token's payload does not decode: {exc}") from exc
    if not isinstance(claims, dict):
        raise SlurmAuthError("the Slurm token's payload is not a JSON object")
    return claims


def check_token(token: str, now: float | None = None) -> None:
    """Raise SlurmAuthError for a token that cannot possibly be accepted."""
    if not token:
        raise SlurmAuthError("no Slurm token")
    claims = token_claims(token)
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp + EXPIRY_LEEWAY_S < (
        now if now is not None else time.time()
    ):
        raise SlurmAuthError(f"the Slurm token expired at {int(exp)} (unix time)")
