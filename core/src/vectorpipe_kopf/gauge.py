"""A Prometheus gauge of a controller's objects by phase.

Both controllers export how many of their objects are in each phase. The
gauge is derived from the last phase seen for each object, so it is exact for
every object handled since start-up; Kopf resumes every existing object when
it starts, which fills it.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import Gauge


class PhaseGauge:
    """Objects by phase, from the last phase seen for each object."""

    def __init__(self, gauge: Gauge, phases: Sequence[str]) -> None:
        self.gauge, self.phases = gauge, tuple(phases)
        self._seen: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        for phase in self.phases:
            gauge.labels(phase=phase).set(0)

    def set(self, namespace: str, name: str, phase: str | None) -> None:
        """Record an object's phase (None: it is gone) and refresh the gauge."""
        with self._lock:
            if phase is None:
                self._seen.pop((namespace, name), None)
            else:
                self._seen[(namespace, name)] = phase
            counts = Tally(self._seen.values())
            for p in self.phases:
                self.gauge.labels(phase=p).set(counts.get(p, 0))
