"""Passes asked for later: one pending timer per pipeline, in this process.

A stuck Ray container whose grace period has not run out yet may never
change again (ErrImageNeverPull, InvalidImageName and a missing Secret keep
the same waiting state, so no pod event comes), and KubeRay writes nothing
while it waits. `Rechecks.schedule` arranges one more reconcile pass once the
grace is over; a newer request for the same pipeline replaces the pending
one. Kopf timers would do this too, but they put a finalizer on the
pipeline, and the operator adds none. The timers are not persisted: after a
restart, the resume pass finds the stuck pod again and asks again. The
callback runs in the `contextvars` context of the pass that asked (so Kopf's
event poster is found from the timer's thread).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Key = tuple[str, str]


class Rechecks:
    """Pending delayed calls, at most one per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timers: dict[Key, threading.Timer] = {}

    def schedule(self, key: Key, delay: float, fn: Callable[[], object]) -> None:
        """Call `fn` in `delay` seconds, replacing what was pending for `key`."""
        context = contextvars.copy_context()

        def fire() -> None:
            with self._lock:
                if self._timers.get(key) is timer:
                    del self._timers[key]
            try:
                context.run(fn)
            except Exception as e:  # the pass reports its own outcome in the status
                log.info("recheck of %s/%s: %s: %s", *key, type(e).__name__, e)

        timer = threading.Timer(max(0.0, delay), fire)
        timer.daemon = True
        with self._lock:
            previous = self._timers.pop(key, None)
            if previous is not None:
                previous.cancel()
            self._timers[key] = timer
        timer.start()

    def pending(self) -> list[Key]:
        with self._lock:
            return sorted(self._timers)

    def cancel_all(self) -> None:
        with self._lock:
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()
