"""What every pass of the bridge shares: the `Bridge` context, per-SlurmJob locks, backoff.

`Bridge` bundles the Kubernetes access, the Slurm client cache, the options and
the metrics; the start-up handler puts one in Kopf's memo and every handler
takes it from there (`from_memo`). Passes over one SlurmJob are serialised by
an in-process lock, because Kopf runs the create handler, the poll timer and
the deletion handler concurrently, and a second pass must see what the first
one submitted before it decides anything. `backoff` is the one retry schedule
of the bridge: doubling from the poll interval, capped.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slurm_bridge.clients import Clients
from slurm_bridge.k8s import Kube
from slurm_bridge.metrics import Metrics
from slurm_bridge.options import Options

MEMO_KEY = "bridge"

_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


@dataclass
class Bridge:
    kube: Kube
    clients: Clients
    options: Options
    metrics: Metrics

    def backoff(self, retry: int, cap: float | None = None) -> float:
        """Delay before retry number `retry + 1`: interval, 2x, 4x, ... capped."""
        limit = self.options.max_backoff if cap is None else cap
        return float(min(limit, self.options.poll_interval * 2 ** max(0, min(retry, 20))))


def from_memo(memo: Any) -> Bridge:
    bridge = memo.get(MEMO_KEY) if hasattr(memo, "get") else None
    if not isinstance(bridge, Bridge):
        raise RuntimeError("the slurm-bridge start-up handler has not run")
    return bridge


def lock_for(namespace: str, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks[(namespace, name)]


def forget(namespace: str, name: str) -> None:
    with _locks_guard:
        _locks.pop((namespace, name), None)


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
