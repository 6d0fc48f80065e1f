"""Handler registration, Kopf settings and the command line, without a cluster."""

from __future__ import annotations

import logging

import kopf
import pytest

from vectorpipe_operator import config
from vectorpipe_operator.__main__ import parse_args
from vectorpipe_operator.main import register
from vectorpipe_operator.reconcile import HANDLER_TIMEOUT, RETRIES


def test_registration_needs_no_finalizer_and_bounds_retries() -> None:
    registry = kopf.OperatorRegistry()
    register(registry)
    changing = registry._changing._handlers
    assert sorted(h.id for h in changing) == [
        "create",
        "on_rayjob_status/status.jobDeploymentStatus",
        "on_rayjob_status/status.jobStatus",
        "on_slurmjob_status/status.phase",
        "resume",
    ]
    for h in changing:
        assert (h.retries, h.timeout) == (RETRIES, HANDLER_TIMEOUT), h.id
        # Nothing outside Kubernetes is owned: deletion is left to owner references.
        assert not h.requires_finalizer, h.id
    assert registry._spawning._handlers == []  # timers/daemons would add a finalizer
    watching = registry._watching._handlers
    assert [h.id for h in watching] == ["on_pipeline_event", "on_pod_event"]
    # Only the Ray pods KubeRay labelled from our templates (Kopf stores nothing on pods).
    assert watching[1].labels == {
        "app.kubernetes.io/managed-by": "vectorpipe-operator",
        "vectorpipe.io/pipeline": kopf.PRESENT,
    }
    children = [h for h in changing if h.id.startswith("on_")]
    assert all(h.labels == {"vectorpipe.io/pipeline": kopf.PRESENT} for h in children)


def test_kopf_settings() -> None:
    settings = kopf.OperatorSettings()
    config.configure(settings)
    progress = settings.persistence.progress_storage
    diffbase = settings.persistence.diffbase_storage
    assert isinstance(progress, kopf.AnnotationsProgressStorage)
    assert isinstance(diffbase, kopf.AnnotationsDiffBaseStorage)
    assert progress.prefix == diffbase.prefix == "vectorpipe.io"
    assert diffbase.key == "operator-last-handled-configuration"
    assert settings.posting.level == logging.WARNING
    assert settings.watching.server_timeout and settings.watching.client_timeout
    backoffs = list(settings.networking.error_backoffs)
    assert 0 < len(backoffs) <= 10 and max(backoffs) <= 60
    # The pod watch is filtered by the API server, not after streaming every pod.
    assert list(settings.watching.label_selectors.values()) == [
        "app.kubernetes.io/managed-by=vectorpipe-operator"
    ]


def test_pod_start_timeout_from_the_environment() -> None:
    assert config.pod_start_timeout(None) == config.pod_start_timeout(" ") == 300.0
    assert config.pod_start_timeout("45") == 45.0
    with pytest.raises(ValueError):
        config.pod_start_timeout("-1")


def test_namespace_scoping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VECTORPIPE_NAMESPACES", raising=False)
    assert parse_args([]).namespace == []
    assert parse_args(["-n", "a", "--namespace", "b-*"]).namespace == ["a", "b-*"]
    monkeypatch.setenv("VECTORPIPE_NAMESPACES", "x, y")
    assert parse_args([]).namespace == ["x", "y"]
    assert parse_args(["-A"]).namespace == []
    args = parse_args(["--log-format", "json", "--metrics-port", "0", "--liveness", ""])
    assert (args.log_format, args.metrics_port, args.liveness) == ("json", 0, "")
