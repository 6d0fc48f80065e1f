"""Typed in-memory stand-ins for the controllers' Kubernetes API (unit tests of pure logic only).

`FakeOperatorKube` implements the operator's `KubeApi` Protocol and
`FakeBridgeKube` the bridge's; mypy checks both against the Protocols (see
the assignments at the bottom), so a test using them needs no `type: ignore`
and a Protocol change breaks the fakes at type-check time, not at run time.
They keep objects by (kind, name), count calls (so a test can assert one GET
per child per pass) and raise scripted failures. Everything that needs a
real API server is tested against one in tests/k8s.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from slurm_bridge import k8s as bridge_k8s
from vectorpipe_kopf.errors import TransientError
from vectorpipe_operator import k8s as operator_k8s


class FakeOperatorKube:
    """The operator's `KubeApi` in memory: objects by (kind, name), scripted failures."""

    def __init__(self, pipeline: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.status_writes = 0
        self.gets: Counter[tuple[str, str]] = Counter()
        self.creates: Counter[tuple[str, str]] = Counter()
        self.deleted: list[tuple[str, str]] = []
        self.fail_get: dict[str, Exception] = {}
        self.fail_status: Exception | None = None
        # Raised by the next status writes, one per write (e.g. a 409 Conflict).
        self.status_failures: list[Exception] = []
        # Runs after a child GET read its answer: "someone else" acting in between.
        self.after_get: Callable[[str, str], None] | None = None
        # Pods by name (KubeRay's, in the real API); `list_pods` filters them by label.
        self.pods: dict[str, dict[str, Any]] = {}
        self.pod_lists = 0
        self.fail_list_pods: Exception | None = None

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.pipeline) if self.pipeline else None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets[(kind, name)] += 1
        if kind in self.fail_get:
            raise self.fail_get[kind]
        obj = self.objects.get((kind, name))
        answer = copy.deepcopy(obj) if obj else None
        if self.after_get is not None:
            self.after_get(kind, name)
        return answer

    def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        self.pod_lists += 1
        if self.fail_list_pods is not None:
            raise self.fail_list_pods
        return [
            copy.deepcopy(pod)
            for pod in self.pods.values()
            if (pod.get("metadata") or {}).get("namespace", namespace) == namespace
            and all(
                ((pod.get("metadata") or {}).get("labels") or {}).get(k) == v
                for k, v in labels.items()
            )
        ]

    def create(self, obj: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        key = (str(obj["kind"]), str(obj["metadata"]["name"]))
        self.creates[key] += 1
        if key in self.objects:  # what the API answers with 409, as the real Kube handles it
            return copy.deepcopy(self.objects[key]), False
        self.objects[key] = copy.deepcopy(dict(obj))
        return copy.deepcopy(dict(obj)), True

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        if self.objects.pop((kind, name), None) is None:
            return False
        self.deleted.append((kind, name))
        return True

    def replace_status(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        if self.fail_status:
            raise self.fail_status
        if self.status_failures:
            raise self.status_failures.pop(0)
        self.status_writes += 1
        self.pipeline["status"] = copy.deepcopy(dict(status))

    def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    # -- test helpers ---------------------------------------------------------
    def set_child_status(self, kind: str, name: str, status: dict[str, Any]) -> None:
        self.objects[(kind, name)]["status"] = status

    def put(self, obj: dict[str, Any]) -> None:
        """An object someone else created (no call counted)."""
        self.objects[(str(obj["kind"]), str(obj["metadata"]["name"]))] = copy.deepcopy(obj)

    def put_pod(self, pod: dict[str, Any]) -> None:
        """A pod KubeRay (or the kubelet) created or changed."""
        self.pods[str(pod["metadata"]["name"])] = copy.deepcopy(pod)


class FakeBridgeKube:
    """The bridge's `KubeApi` in memory: one SlurmJob (`obj`) and Secrets; patches recorded."""

    def __init__(
        self,
        obj: dict[str, Any] | None = None,
        secrets: dict[tuple[str, str], dict[str, str]] | None = None,
    ) -> None:
        self.obj: dict[str, Any] = obj or {}
        self.secrets = secrets or {}
        self.gone = False
        self.reads = 0
        self.events: list[tuple[str, str, str]] = []
        self.patches: list[dict[str, Any]] = []

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.obj.get("status") or {})

    def get_slurmjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None if self.gone or not self.obj else copy.deepcopy(self.obj)

    def patch_status(
        self, namespace: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        self.patches.append(copy.deepcopy(dict(new)))
        self.obj["status"] = copy.deepcopy(dict(new))

    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        self.reads += 1
        data = self.secrets.get((namespace, name))
        if data is None:
            raise TransientError("SecretNotFound", f"Secret {namespace}/{name} not found")
        if key not in data:
            raise TransientError(
                "SecretKeyNotFound", f"Secret {namespace}/{name} has no key {key!r}"
            )
        return data[key]

    def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


# mypy checks the fakes against the Protocols here.
_operator_api: type[operator_k8s.KubeApi] = FakeOperatorKube
_bridge_api: type[bridge_k8s.KubeApi] = FakeBridgeKube
