"""What every pass of the bridge shares: the `Bridge` context, per-SlurmJob locks, backoff.

`Bridge` bundles the Kubernetes access, the Slurm client cache, the options and
the metrics; the start-up handler puts one in Kopf's memo and every handler
takes it from there (`from_memo`). Passes over one SlurmJob are serialised by
an in-process lock, because Kopf runs the create handler, the poll timer and
the deletion handler concurrently, and a second pass must see what the first
one submitted before it decides anything. `backoff` is the one retry schedule
of the bridge: doubling from the poll interval, capped. `Hooks` are the
fault-injection seams the restart tests set through `python -m slurm_bridge`'s
`main(hooks=...)`; production never sets them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slurm_bridge.clients import ClientSource
from slurm_bridge.k8s import KubeApi
from slurm_bridge.metrics import Metrics
from slurm_bridge.options import Options
from vectorpipe_kopf.errors import capped_backoff
from vectorpipe_kopf.locks import ObjectLocks

MEMO_KEY = "bridge"
HOOKS_KEY = "hooks"

_locks = ObjectLocks()


def _nothing(job_id: int) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    """Seams for fault-injection tests (a crash right after a submit); no-ops in production."""

    after_submit: Callable[[int], None] = _nothing


@dataclass
class Bridge:
    kube: KubeApi
    clients: ClientSource
    options: Options
    metrics: Metrics
    hooks: Hooks = field(default_factory=Hooks)

    def backoff(self, retry: int, cap: float | None = None) -> float:
        """Delay before retry number `retry + 1`: interval, 2x, 4x, ... capped."""
        limit = self.options.max_backoff if cap is None else cap
        return capped_backoff(retry, self.options.poll_interval, limit)


def from_memo(memo: Any) -> Bridge:
    bridge = memo.get(MEMO_KEY) if hasattr(memo, "get") else None
    if not isinstance(bridge, Bridge):
        raise RuntimeError("the slurm-bridge start-up handler has not run")
    return bridge


lock_for = _locks.lock_for
forget = _locks.forget


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
