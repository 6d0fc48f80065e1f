"""Prometheus metrics of the bridge: submissions, polls, errors, SlurmJobs by phase.

The metrics live in their own `CollectorRegistry`, created on first use, so
importing this module registers nothing and two bridges in one test process do
not share counters. `serve` starts the HTTP endpoint (`/metrics`). The gauge of
SlurmJobs by phase is derived from the last phase seen for each SlurmJob; Kopf
resumes every existing SlurmJob at start-up, which fills it.
"""

from __future__ import annotations

import functools
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from vectorpipe_api.slurmjob import SlurmJobPhase
from vectorpipe_kopf.gauge import PhaseGauge

PHASES: tuple[str, ...] = get_args(SlurmJobPhase)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.submits = Counter(
            "slurm_bridge_submits_total",
            "Submissions by result (submitted, adopted, rejected, error).",
            ["result"],
            registry=self.registry,
        )
        self.polls = Counter(
            "slurm_bridge_polls_total",
            "Polls of Slurm job state by result (ok, lost, error).",
            ["result"],
            registry=self.registry,
        )
        self.cancels = Counter(
            "slurm_bridge_cancels_total",
            "scancel calls on SlurmJob deletion by result (ok, gone, error, skipped).",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "slurm_bridge_errors_total",
            "Errors by reason (SlurmUnavailable, SlurmAuthError, SecretNotFound, ...).",
            ["reason"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "slurm_bridge_slurmjobs", "SlurmJobs by phase.", ["phase"], registry=self.registry
        )
        self._by_phase = PhaseGauge(self.jobs, PHASES)

    def error(self, reason: str) -> None:
        self.errors.labels(reason=reason).inc()

    def set_phase(self, namespace: str, name: str, phase: str | None) -> None:
        """Record a SlurmJob's phase (None: it is gone) and refresh the gauge."""
        self._by_phase.set(namespace, name, phase)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)


@functools.cache
def metrics() -> Metrics:
    return Metrics()
