"""Pure diagnosis of stage 1's pods: is a Ray container stuck, and is that final?

KubeRay waits forever for a Ray head or worker whose container cannot start
(a bad image, a missing Secret) or keeps crashing, so the operator looks at
the pods itself. `diagnose` takes the pods as the API returns them (plain
dicts in the Kubernetes shape) and returns the first stuck container, in a
stable order (pods by name; init containers before containers), or None.
A container is stuck while its state is `waiting` with one of `STUCK_REASONS`.

`is_final` is the rule that turns a stuck container into a Failed pipeline:

* CrashLoopBackOff is final once the container restarted more times than the
  RayJob may retry (`restartCount > spec.ray.backoffLimit`): the pod would
  crash-loop for ever, and KubeRay never retries a RayJob whose cluster
  never became ready, so waiting longer buys nothing.
* Every other stuck reason (image pull, image name, container config or
  creation) is final once the pod has existed for longer than the grace
  period (`grace`, the operator's `--pod-start-timeout`, default
  `POD_START_TIMEOUT` = 300 s), measured from the pod's `status.startTime`
  (else its creation). The grace covers what fixes itself: a registry
  hiccup, a Secret an external controller creates a little later.

A pod the scheduler cannot place (PodScheduled False, reason Unschedulable:
no node with the CPU or memory asked for) is shown the same way but is never
final: a cluster autoscaler (Karpenter, the cluster-autoscaler) may add the
node, and a finished pipeline elsewhere may free one.

Terminating pods are skipped (a previous run's pods, a cluster being torn
down), and so are pods of another RayCluster than the RayJob's current one.
Nothing here talks to the API or reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vectorpipe_kopf.errors import Problem
from vectorpipe_operator.views import clip, text, timestamp

IMAGE_REASONS = frozenset(
    {"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName"}
)
CONTAINER_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
CRASH_LOOP = "CrashLoopBackOff"
UNSCHEDULABLE = "Unschedulable"
STUCK_REASONS = IMAGE_REASONS | CONTAINER_REASONS | {CRASH_LOOP}
POD_START_TIMEOUT = 300.0
LABEL_RAY_CLUSTER = "ray.io/cluster"


@dataclass(frozen=True)
class PodFault:
    """One stuck container of one pod."""

    pod: str
    container: str
    reason: str
    message: str = ""
    restarts: int = 0
    since: str = ""  # RFC 3339: the pod's startTime, else its creationTimestamp

    @property
    def problem(self) -> Problem:
        """Reason: the kubelet's waiting reason; message: pod, container, kubelet's words."""
        detail = f": {self.message}" if self.message else ""
        restarts = f" (restarted {self.restarts} times)" if self.reason == CRASH_LOOP else ""
        return Problem(
            self.reason,
            clip(f"pod {self.pod} container {self.container} {self.reason}{restarts}{detail}"),
        )


@dataclass(frozen=True)
class PodsView:
    """What one look at stage 1's pods found: how many, and the first stuck container."""

    count: int
    fault: PodFault | None = None


def _restarts(status: Mapping[str, Any]) -> int:
    value = status.get("restartCount")
    return value if isinstance(value, int) else 0


def _stuck(pod: Mapping[str, Any]) -> PodFault | None:
    meta, st = pod.get("metadata") or {}, pod.get("status") or {}
    since = timestamp(st, "startTime") or timestamp(meta, "creationTimestamp")
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in st.get(key) or []:
            if not isinstance(cs, Mapping):
                continue
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = text(waiting, "reason")
            if reason in STUCK_REASONS:
                return PodFault(
                    pod=text(meta, "name"),
                    container=text(cs, "name"),
                    reason=reason,
                    message=text(waiting, "message"),
                    restarts=_restarts(cs),
                    since=since,
                )
    for cond in st.get("conditions") or []:
        if (
            isinstance(cond, Mapping)
            and cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == UNSCHEDULABLE
        ):
            return PodFault(
                pod=text(meta, "name"),
                container="-",
                reason=UNSCHEDULABLE,
                message=text(cond, "message"),
                since=since,
            )
    return None


def diagnose(pods: Iterable[Mapping[str, Any]], cluster: str = "") -> PodsView:
    """The live pods of this run and the first stuck container among them.

    `cluster`: the RayJob's RayCluster (status.rayClusterName) once KubeRay
    named it; a pod labelled with another cluster belongs to another run.
    """
    live = [
        p
        for p in pods
        if not (p.get("metadata") or {}).get("deletionTimestamp")
        and not (
            cluster
            and ((p.get("metadata") or {}).get("labels") or {}).get(LABEL_RAY_CLUSTER, cluster)
            != cluster
        )
    ]
    live.sort(key=lambda p: text(p.get("metadata") or {}, "name"))
    for pod in live:
        fault = _stuck(pod)
        if fault is not None:
            return PodsView(len(live), fault)
    return PodsView(len(live))


def _seconds(since: str, now: str) -> float | None:
    try:
        start = datetime.fromisoformat(since)
        end = datetime.fromisoformat(now)
    except ValueError:
        return None
    return (end - start).total_seconds()


def remaining(fault: PodFault, now: str, grace: float, backoff_limit: int) -> float | None:
    """Seconds until the fault becomes final; 0 if it is; None if time does not decide it."""
    if fault.reason == CRASH_LOOP:
        return 0.0 if fault.restarts > backoff_limit else None
    if fault.reason == UNSCHEDULABLE:
        return None  # shown, never final (see the module docstring)
    elapsed = _seconds(fault.since, now) if fault.since else None
    if elapsed is None:
        return 0.0 if grace <= 0 else grace  # no start time: count from this look
    return max(0.0, grace - elapsed)


def is_final(fault: PodFault, now: str, grace: float, backoff_limit: int) -> bool:
    """Whether this stuck container fails the pipeline (see the module docstring)."""
    return remaining(fault, now, grace, backoff_limit) == 0.0
