"""Stuck Ray pods: the pure diagnosis over pods in the API's shape, and the reconcile rule.

A Ray head or worker whose container cannot start (image, config) or keeps
crashing shows in the pipeline's PodsHealthy and Ready conditions at once,
and fails the pipeline once final: an image or container fault after the
grace period (from the pod's start), CrashLoopBackOff once the container
restarted more often than spec.ray.backoffLimit. The failing pass deletes the
RayJob (KubeRay would wait for ever); a fault inside its grace asks for one
more pass when the grace is over.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import kopf
import pytest

from tests.support import operator as support
from tests.support.fakes import FakeOperatorKube as FakeKube
from vectorpipe_kopf.errors import TransientError
from vectorpipe_operator import pods
from vectorpipe_operator import reconcile as rec
from vectorpipe_operator.rechecks import Rechecks
from vectorpipe_operator.status import condition, failed_on_stuck_pod

NS, NAME, UID = "ns", "r42", "uid-r42"
CLUSTER = "r42-etl-x7k2p"
T0 = "2025-01-01T00:00:00Z"
IMAGE = "registry.example/vectorpipe/ray-worker:0.1.0"


def make_pod(
    name: str = f"{CLUSTER}-head-abcde",
    *,
    reason: str | None = None,
    message: str = "",
    restarts: int = 0,
    container: str = "ray-head",
    cluster: str = CLUSTER,
    init: bool = False,
    deleting: bool = False,
    start: str | None = T0,
) -> dict[str, Any]:
    """A pod as the API returns it: KubeRay's labels plus the ones from our template."""
    state: dict[str, Any] = (
        {"waiting": {"reason": reason, "message": message}}
        if reason
        else {"running": {"startedAt": T0}}
    )
    cstatus = {
        "name": container,
        "image": IMAGE,
        "imageID": "",
        "ready": reason is None,
        "restartCount": restarts,
        "started": reason is None,
        "state": state,
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}} if restarts else {},
    }
    status: dict[str, Any] = {
        "phase": "Running" if reason is None else "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "hostIP": "10.0.0.5",
        "podIP": "10.244.0.17",
        "qosClass": "Guaranteed",
        "containerStatuses": [cstatus],
    }
    if init:
        status["initContainerStatuses"] = [
            {**cstatus, "name": "wait-gcs-ready"},
        ]
        status["containerStatuses"] = [
            {**cstatus, "state": {"waiting": {"reason": "PodInitializing"}}}
        ]
    if start:
        status["startTime"] = start
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "creationTimestamp": T0,
        "labels": {
            "app.kubernetes.io/name": "vectorpipe",
            "app.kubernetes.io/component": "ray",
            "app.kubernetes.io/managed-by": "vectorpipe-operator",
            "vectorpipe.io/pipeline": NAME,
            "vectorpipe.io/pipeline-uid": UID,
            "ray.io/cluster": cluster,
            "ray.io/node-type": "head",
            "ray.io/is-ray-node": "yes",
        },
        "ownerReferences": [
            {"apiVersion": "ray.io/v1", "kind": "RayCluster", "name": cluster, "controller": True}
        ],
    }
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:30Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": container, "image": IMAGE}]},
        "status": status,
    }


PULL_MSG = f'Back-off pulling image "{IMAGE}"'


# -- pure diagnosis -----------------------------------------------------------


def test_healthy_pods_have_no_fault() -> None:
    view = pods.diagnose(
        [make_pod(), make_pod(f"{CLUSTER}-workers-worker-1", container="ray-worker")]
    )
    assert view == pods.PodsView(count=2)


@pytest.mark.parametrize("reason", sorted(pods.STUCK_REASONS))
def test_every_stuck_reason_is_found(reason: str) -> None:
    view = pods.diagnose([make_pod(reason=reason, message="kubelet says no")])
    assert view.fault is not None
    problem = view.fault.problem
    assert problem.reason == reason
    assert f"pod {CLUSTER}-head-abcde container ray-head {reason}" in problem.message
    assert problem.message.endswith(": kubelet says no")


def test_other_waiting_reasons_are_not_stuck() -> None:
    for reason in ("ContainerCreating", "PodInitializing"):
        assert pods.diagnose([make_pod(reason=reason)]).fault is None


def test_first_stuck_container_by_pod_name_and_init_containers_first() -> None:
    a = make_pod("a-pod", reason="ImagePullBackOff", message=PULL_MSG)
    b = make_pod("b-pod", reason="CrashLoopBackOff", restarts=3)
    fault = pods.diagnose([b, a]).fault
    assert fault is not None and (fault.pod, fault.reason) == ("a-pod", "ImagePullBackOff")
    init = make_pod("c-pod", reason="CreateContainerConfigError", init=True)
    fault = pods.diagnose([init]).fault
    assert fault is not None and fault.container == "wait-gcs-ready"


def test_terminating_and_other_cluster_pods_are_skipped() -> None:
    old = make_pod("old", reason="ErrImagePull", cluster="r42-etl-older")
    gone = make_pod("gone", reason="ErrImagePull", deleting=True)
    view = pods.diagnose([old, gone], cluster=CLUSTER)
    assert view == pods.PodsView(count=0)
    # Before KubeRay names the cluster, every live pod of the pipeline counts.
    assert pods.diagnose([old]).fault is not None


def test_crash_message_counts_restarts() -> None:
    msg = f"back-off 40s restarting failed container=ray-head pod={CLUSTER}-head-abcde"
    fault = pods.diagnose([make_pod(reason="CrashLoopBackOff", restarts=3, message=msg)]).fault
    assert fault is not None
    assert "CrashLoopBackOff (restarted 3 times): back-off 40s" in fault.problem.message


@pytest.mark.parametrize(
    ("fault", "now", "left"),
    [
        (pods.PodFault("p", "c", "ImagePullBackOff", since=T0), "2025-01-01T00:01:00Z", 240.0),
        (pods.PodFault("p", "c", "ErrImageNeverPull", since=T0), "2025-01-01T00:05:00Z", 0.0),
        (
            pods.PodFault("p", "c", "CreateContainerConfigError", since=T0),
            "2025-01-01T01:00:00Z",
            0.0,
        ),
        (pods.PodFault("p", "c", "CrashLoopBackOff", restarts=1), T0, 0.0),
        (pods.PodFault("p", "c", "CrashLoopBackOff", restarts=0), "2030-01-01T00:00:00Z", None),
    ],
)
def test_the_rule(fault: pods.PodFault, now: str, left: float | None) -> None:
    assert pods.remaining(fault, now, 300.0, backoff_limit=0) == left
    assert pods.is_final(fault, now, 300.0, backoff_limit=0) == (left == 0.0)


def test_crash_loop_tolerates_backoff_limit_restarts() -> None:
    fault = pods.PodFault("p", "c", "CrashLoopBackOff", restarts=2)
    assert not pods.is_final(fault, T0, 300.0, backoff_limit=2)
    assert pods.is_final(pods.PodFault("p", "c", "CrashLoopBackOff", restarts=3), T0, 300.0, 2)


def test_grace_counts_from_creation_without_start_time() -> None:
    (fault,) = [pods.diagnose([make_pod(reason="InvalidImageName", start=None)]).fault]
    assert fault is not None and fault.since == T0


# -- through reconcile ----------------------------------------------------------


@pytest.fixture
def kube(tmp_path: Path) -> FakeKube:
    return FakeKube(
        {
            "apiVersion": "vectorpipe.io/v1alpha1",
            "kind": "VectorPipeline",
            "metadata": {
                "name": NAME,
                "namespace": NS,
                "uid": UID,
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": {"input": {"uri": "/reads/"}, "output": {"uri": f"{tmp_path}/out/"}},
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> str:
        return self.now


def running(kube: FakeKube, clock: Clock, rechecks: list[float]) -> rec.Context:
    return rec.Context(
        kube,
        trigger="pod",
        clock=clock,
        recheck=lambda ns, name, delay: rechecks.append(delay),
    )


def start(kube: FakeKube, ctx: rec.Context) -> None:
    rec.reconcile(ctx, NS, NAME)
    kube.set_child_status(
        "RayJob",
        "r42-etl",
        {"jobDeploymentStatus": "Initializing", "rayClusterName": CLUSTER},
    )


def test_an_image_fault_shows_then_fails_after_the_grace(kube: FakeKube) -> None:
    clock, rechecks = Clock(), []
    ctx = running(kube, clock, rechecks)
    start(kube, ctx)
    kube.put_pod(make_pod(reason="ImagePullBackOff", message=PULL_MSG))
    clock.now = "2025-01-01T00:01:40Z"
    assert rec.reconcile(ctx, NS, NAME) == "Embedding"
    status = kube.pipeline["status"]
    pods_cond, ready = condition(status, "PodsHealthy"), condition(status, "Ready")
    assert (pods_cond["status"], pods_cond["reason"]) == ("False", "ImagePullBackOff")
    assert (ready["reason"], ready["message"]) == (pods_cond["reason"], pods_cond["message"])
    assert PULL_MSG in ready["message"] and "container ray-head" in ready["message"]
    assert rechecks == [200.0]  # asks to look again when the grace is over
    assert ("RayJob", "r42-etl") in kube.objects
    # The recheck, after the grace: Failed with the kubelet's reason, and the run is ended.
    clock.now = "2025-01-01T00:05:00Z"
    with pytest.raises(kopf.PermanentError, match="ImagePullBackOff"):
        rec.reconcile(ctx, NS, NAME)
    status = kube.pipeline["status"]
    assert status["phase"] == "Failed"
    assert condition(status, "EmbeddingComplete")["reason"] == "ImagePullBackOff"
    assert failed_on_stuck_pod(status)
    assert kube.deleted == [("RayJob", "r42-etl")]
    assert [e[1] for e in kube.events][-2:] == ["Failed", "StuckRunEnded"]
    # Terminal: later pod events (the cluster going away) change nothing.
    writes = kube.status_writes
    assert rec.reconcile(ctx, NS, NAME) == "Failed"
    assert kube.status_writes == writes and kube.deleted == [("RayJob", "r42-etl")]


def test_crash_loop_beyond_the_backoff_limit_fails_at_once(kube: FakeKube) -> None:
    clock, rechecks = Clock(), []
    ctx = running(kube, clock, rechecks)
    start(kube, ctx)
    kube.put_pod(make_pod(reason="CrashLoopBackOff", restarts=1, message="back-off 10s"))
    with pytest.raises(kopf.PermanentError, match="CrashLoopBackOff"):
        rec.reconcile(ctx, NS, NAME)
    assert kube.pipeline["status"]["phase"] == "Failed"
    assert kube.deleted == [("RayJob", "r42-etl")] and rechecks == []


def test_a_recovered_pod_clears_the_condition(kube: FakeKube) -> None:
    clock, rechecks = Clock(), []
    ctx = running(kube, clock, rechecks)
    start(kube, ctx)
    kube.put_pod(make_pod(reason="CreateContainerConfigError", message='secret "s3" not found'))
    rec.reconcile(ctx, NS, NAME)
    assert condition(kube.pipeline["status"], "PodsHealthy")["status"] == "False"
    kube.put_pod(make_pod())
    clock.now = "2025-01-01T00:00:30Z"
    assert rec.reconcile(ctx, NS, NAME) == "Embedding"
    status = kube.pipeline["status"]
    assert condition(status, "PodsHealthy")["status"] == "True"
    assert condition(status, "Ready")["reason"] == "Embedding"
    # Once stage 1 is done the pods are not looked at, and the last word stays.
    out = Path(kube.pipeline["spec"]["output"]["uri"])
    support.commit_manifest(out, 100, 4, 137, run=UID, bytes_per_row=10)
    kube.set_child_status(
        "RayJob", "r42-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    )
    assert rec.reconcile(ctx, NS, NAME) == "Clustering"
    assert kube.pod_lists == 2
    assert condition(kube.pipeline["status"], "PodsHealthy")["status"] == "True"


def test_a_failed_delete_is_redone_by_the_next_pass(kube: FakeKube) -> None:
    clock, rechecks = Clock(), []
    ctx = running(kube, clock, rechecks)
    start(kube, ctx)
    kube.put_pod(make_pod(reason="InvalidImageName"))
    clock.now = "2025-01-01T00:10:00Z"
    real_delete = kube.delete

    def unavailable(kind: str, namespace: str, name: str) -> bool:
        raise TransientError("KubernetesUnavailable", "HTTP 503")

    kube.delete = unavailable  # type: ignore[method-assign]
    with pytest.raises(kopf.TemporaryError, match="503"):
        rec.reconcile(ctx, NS, NAME)
    assert kube.pipeline["status"]["phase"] == "Failed"
    kube.delete = real_delete  # type: ignore[method-assign]
    assert rec.reconcile(ctx, NS, NAME) == "Failed"
    assert kube.deleted == [("RayJob", "r42-etl")]


def test_pods_are_not_listed_before_kuberay_or_after_stage_one(kube: FakeKube) -> None:
    clock, rechecks = Clock(), []
    ctx = running(kube, clock, rechecks)
    rec.reconcile(ctx, NS, NAME)  # RayJob just created: no status, no pods yet
    kube.set_child_status(
        "RayJob", "r42-etl", {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED"}
    )
    with pytest.raises(kopf.PermanentError):
        rec.reconcile(ctx, NS, NAME)
    assert kube.pod_lists == 0


def test_a_pod_list_failure_is_transient(kube: FakeKube) -> None:
    clock, rechecks = Clock(), []
    ctx = running(kube, clock, rechecks)
    start(kube, ctx)
    kube.fail_list_pods = TransientError("Forbidden", "list pods: HTTP 403; check the RBAC")
    with pytest.raises(kopf.TemporaryError, match="403"):
        rec.reconcile(ctx, NS, NAME)
    status = kube.pipeline["status"]
    assert status["phase"] == "Embedding"
    assert condition(status, "Ready")["reason"] == "Forbidden"


def test_rechecks_keep_one_timer_per_pipeline() -> None:
    fired = threading.Event()
    calls: list[str] = []
    r = Rechecks()
    r.schedule(("ns", "a"), 60.0, lambda: calls.append("late"))
    r.schedule(("ns", "a"), 0.01, lambda: (calls.append("now"), fired.set()))
    assert fired.wait(5.0)
    assert calls == ["now"]
    r.schedule(("ns", "b"), 60.0, lambda: calls.append("never"))
    assert r.pending() == [("ns", "b")]
    r.cancel_all()
    assert r.pending() == []


def test_an_unschedulable_pod_is_shown_but_never_final() -> None:
    """The scheduler's words reach the condition; a cluster autoscaler may still add a node."""
    pod = make_pod(f"{CLUSTER}-workers-worker-1", container="ray-worker")
    message = "0/1 nodes are available: 1 Insufficient cpu."
    pod["status"] = {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": message},
        ],
    }  # fmt: skip
    view = pods.diagnose([make_pod(), pod])
    assert view.fault is not None
    assert (view.fault.pod, view.fault.reason) == (pod["metadata"]["name"], "Unschedulable")
    assert message in view.fault.problem.message
    far_later = "2031-01-01T00:00:00+00:00"
    assert pods.remaining(view.fault, far_later, grace=1.0, backoff_limit=0) is None
    assert not pods.is_final(view.fault, far_later, grace=1.0, backoff_limit=0)
