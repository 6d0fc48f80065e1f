"""The controller's own errors (not Slurm's: those are in `slurm_bridge.errors`), Kopf-free.

`TransientError`: something outside Slurm is missing or unreachable for now
(the Kubernetes API answers 5xx, the token Secret does not exist yet, a key is
absent, a CA bundle does not parse); the SlurmJob keeps its phase, the fault
shows in its SlurmReachable condition, and the pass is retried with a bounded
backoff. `InvalidJobError`: the SlurmJob can never run as written (a spec the
API server let through but the model refuses); it turns Failed. `reconcile`
alone turns these, and the typed Slurm errors, into Kopf's TemporaryError.
"""

from __future__ import annotations


class BridgeError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class TransientError(BridgeError):
    """Retry later; show it in the SlurmReachable condition meanwhile."""


class InvalidJobError(BridgeError):
    """The SlurmJob fails with this reason."""
