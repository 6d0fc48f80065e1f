"""The Kopf runtime both controllers share (vectorpipe_kopf): shell, gauge, locks, errors."""

from __future__ import annotations

import argparse
import logging

import kopf
import pytest
from prometheus_client import CollectorRegistry, Gauge

from vectorpipe_kopf import shell as runtime
from vectorpipe_kopf.errors import InvalidStateError, TransientError, capped_backoff
from vectorpipe_kopf.gauge import PhaseGauge
from vectorpipe_kopf.locks import ObjectLocks


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    runtime.add_scope_args(p)
    runtime.add_logging_args(p)
    return p.parse_args(argv)


def test_namespaces_come_from_flags_else_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_NAMESPACES", " a, b ,,")
    args = _parse([])
    runtime.resolve_namespaces(args, "X_NAMESPACES")
    assert args.namespace == ["a", "b"]
    args = _parse(["-n", "c"])
    runtime.resolve_namespaces(args, "X_NAMESPACES")
    assert args.namespace == ["c"]
    args = _parse(["-A"])
    runtime.resolve_namespaces(args, "X_NAMESPACES")
    assert args.namespace == []  # -A wins over the environment
    with pytest.raises(SystemExit):
        _parse(["-A", "-n", "a"])  # one scope or the other


def test_metrics_endpoint_prefers_the_memo_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert runtime.metrics_endpoint(kopf.Memo(), "X_PORT", "X_ADDR") == (0, "0.0.0.0")
    monkeypatch.setenv("X_PORT", "9100")
    monkeypatch.setenv("X_ADDR", "127.0.0.1")
    assert runtime.metrics_endpoint(kopf.Memo(), "X_PORT", "X_ADDR") == (9100, "127.0.0.1")
    memo = kopf.Memo(metrics_port=9200, metrics_addr="::1")
    assert runtime.metrics_endpoint(memo, "X_PORT", "X_ADDR") == (9200, "::1")


def test_settings_keep_state_under_the_given_prefix_with_bounded_backoffs() -> None:
    settings = kopf.OperatorSettings()
    runtime.configure_settings(
        settings,
        prefix="x.example.io",
        diffbase_key="d",
        touch_key="t",
        finalizer="x.example.io/f",
        posting_level=logging.ERROR,
        max_workers=3,
    )
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.persistence.progress_storage.prefix == "x.example.io"
    assert settings.persistence.finalizer == "x.example.io/f"
    assert settings.posting.level == logging.ERROR
    assert list(settings.networking.error_backoffs) == [1, 2, 4, 8, 16, 30]
    assert settings.execution.max_workers == 3


def test_phase_gauge_counts_each_object_once_in_its_last_phase() -> None:
    registry = CollectorRegistry()
    gauge = PhaseGauge(Gauge("objs", "by phase", ["phase"], registry=registry), ["A", "B"])

    def value(phase: str) -> float | None:
        return registry.get_sample_value("objs", {"phase": phase})

    assert (value("A"), value("B")) == (0, 0)
    gauge.set("ns", "x", "A")
    gauge.set("ns", "y", "A")
    gauge.set("ns", "x", "B")
    assert (value("A"), value("B")) == (1, 1)
    gauge.set("ns", "y", None)
    gauge.set("other", "x", "B")
    assert (value("A"), value("B")) == (0, 2)


def test_peering_priority_is_random_unless_given_and_none_when_standalone() -> None:
    assert runtime.peering_priority(_parse([])) is None
    assert runtime.peering_priority(_parse(["--peering", "p", "--priority", "7"])) == 7
    drawn = {runtime.peering_priority(_parse(["--peering", "p"])) for _ in range(20)}
    assert None not in drawn and len(drawn) > 1  # two replicas of one Deployment never tie


def test_locks_are_per_object_and_forgotten() -> None:
    locks = ObjectLocks()
    a = locks.lock_for("ns", "a")
    assert locks.lock_for("ns", "a") is a
    assert locks.lock_for("ns", "b") is not a
    assert locks.lock_for("other", "a") is not a
    locks.forget("ns", "a")
    assert len(locks) == 2
    assert locks.lock_for("ns", "a") is not a


def test_errors_carry_reason_message_and_delay() -> None:
    e = TransientError("KubernetesUnavailable", "HTTP 503", delay=3.0)
    assert (e.reason, e.message, e.problem.delay) == ("KubernetesUnavailable", "HTTP 503", 3.0)
    assert str(e) == "KubernetesUnavailable: HTTP 503"
    assert InvalidStateError("ChildConflict", "taken").problem.delay is None


def test_backoff_doubles_and_is_capped() -> None:
    assert [capped_backoff(a, 5.0, 60.0) for a in range(6)] == [5, 10, 20, 40, 60, 60]
    assert capped_backoff(10_000, 1.0, 30.0) == 30.0  # no overflow on long outages
