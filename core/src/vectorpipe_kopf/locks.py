"""Per-object locks: one pass at a time for each object, within one process.

Kopf runs a resource's create, timer, field and deletion handlers
concurrently; a second pass must see what the first one created or submitted
before it decides anything, so each controller serialises passes per
(namespace, name). Across processes, Kopf peering keeps one active replica
and the status writes carry the version they were computed from.
"""

from __future__ import annotations

import threading
from collections import defaultdict


class ObjectLocks:
    """A lock per (namespace, name), dropped when the object is forgotten."""

    def __init__(self) -> None:
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def lock_for(self, namespace: str, name: str) -> threading.Lock:
        with self._guard:
            return self._locks[(namespace, name)]

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._locks.pop((namespace, name), None)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)
