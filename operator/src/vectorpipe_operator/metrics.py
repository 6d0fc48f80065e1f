"""Prometheus metrics of the operator: reconciles, errors, pipelines by phase.

The metrics live in their own `CollectorRegistry`, created on first use, so
importing this module registers nothing and two operators in one test process
do not share counters. `serve` starts the HTTP endpoint (`/metrics`); the
gauge of pipelines by phase is derived from the last phase seen for each
pipeline, so it is exact for every pipeline reconciled since start-up (Kopf
resumes every existing pipeline at start, which fills it).
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from vectorpipe_api.pipeline_status import PHASES
from vectorpipe_kopf.gauge import PhaseGauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "vectorpipe_operator_reconciles_total",
            "Reconcile passes by trigger and result.",
            ["trigger", "result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "vectorpipe_operator_errors_total",
            "Reconcile errors by kind (transient, permanent, unexpected) and reason.",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.pipelines = Gauge(
            "vectorpipe_operator_pipelines",
            "VectorPipelines by phase.",
            ["phase"],
            registry=self.registry,
        )
        self._by_phase = PhaseGauge(self.pipelines, PHASES)

    def reconciled(self, trigger: str, result: str) -> None:
        self.reconciles.labels(trigger=trigger, result=result).inc()

    def error(self, kind: str, reason: str) -> None:
        self.errors.labels(kind=kind, reason=reason).inc()

    def set_phase(self, namespace: str, name: str, phase: str | None) -> None:
        """Record a pipeline's phase (None: it is gone) and refresh the gauge."""
        self._by_phase.set(namespace, name, phase)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)


@functools.cache
def metrics() -> Metrics:
    return Metrics()
