"""The one module of the operator that talks to the Kubernetes API.

`KubeApi` is what a reconcile pass may do with the API, as a Protocol: read a
pipeline or a child, list the pods carrying given labels (stage 1's Ray pods,
which KubeRay labels from our pod templates), create a child (a 409 from a concurrent or earlier
create returns the existing object instead), delete a previous run's child,
replace a pipeline's status through the status subresource with the
resourceVersion it was computed from (so a stale computation gets a 409 and
is retried instead of overwriting a newer status), and post Events. `Kube` is
the real implementation on `vectorpipe_kopf.kube.KubeBase`, which sorts every
API failure into transient and permanent; unit tests pass a typed fake
instead. The client configuration is loaded at operator start-up, never at
import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from vectorpipe_api.meta import (
    GROUP,
    PIPELINE_KIND,
    PIPELINE_PLURAL,
    RAY_GROUP,
    RAY_VERSION,
    RAYJOB_KIND,
    RAYJOB_PLURAL,
    SLURMJOB_KIND,
    SLURMJOB_PLURAL,
    VERSION,
)
from vectorpipe_kopf.errors import TransientError
from vectorpipe_kopf.kube import KubeBase, load_config

__all__ = ["CUSTOM", "Kube", "KubeApi", "load_config"]

# kind -> (group, version, plural) for the custom resources we touch.
CUSTOM: dict[str, tuple[str, str, str]] = {
    PIPELINE_KIND: (GROUP, VERSION, PIPELINE_PLURAL),
    RAYJOB_KIND: (RAY_GROUP, RAY_VERSION, RAYJOB_PLURAL),
    SLURMJOB_KIND: (GROUP, VERSION, SLURMJOB_PLURAL),
}


class KubeApi(Protocol):
    """What a reconcile pass may ask of the Kubernetes API."""

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The pods of `namespace` carrying every one of `labels`, as plain dicts."""
        ...

    def create(self, obj: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """The object as created (True), or the existing one after a 409 (False)."""
        ...

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete (in the background) if present; True if something was deleted."""
        ...

    def replace_status(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None: ...

    def post_event(
        self, body: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None: ...


class Kube(KubeBase):
    """The real `KubeApi`."""

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(PIPELINE_KIND, namespace, name)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind == "ConfigMap":
            return self.get_or_none(
                f"get ConfigMap {namespace}/{name}",
                self.core.read_namespaced_config_map,
                name,
                namespace,
            )
        return self.get_custom(CUSTOM[kind], namespace, name, kind)

    def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        # The raw JSON: the client's models would only be turned back into dicts.
        response = self.call(
            f"list pods in {namespace} ({selector})",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            _preload_content=False,
        )
        items = json.loads(response.data or b"{}").get("items") or []
        return [dict(item) for item in items if isinstance(item, dict)]

    def create(self, obj: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        kind, meta = str(obj["kind"]), obj["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        what = f"create {kind} {namespace}/{name}"
        try:
            if kind == "ConfigMap":
                created = self.call(what, self.core.create_namespaced_config_map, namespace, obj)
            else:
                group, version, plural = CUSTOM[kind]
                created = self.call(
                    what,
                    self.custom.create_namespaced_custom_object,
                    group,
                    version,
                    namespace,
                    plural,
                    obj,
                )
        except ApiException as e:
            if e.status != 409:
                raise
            existing = self.get(kind, namespace, name)
            if existing is None:
                raise TransientError(
                    "KubernetesUnavailable", f"{kind} {name} vanished after a conflict"
                ) from e
            return existing, False
        return self.as_dict(created), True

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        what = f"delete {kind} {namespace}/{name}"
        body = client.V1DeleteOptions(propagation_policy="Background")
        try:
            if kind == "ConfigMap":
                self.call(what, self.core.delete_namespaced_config_map, name, namespace, body=body)
            else:
                group, version, plural = CUSTOM[kind]
                self.call(
                    what,
                    self.custom.delete_namespaced_custom_object,
                    group,
                    version,
                    namespace,
                    plural,
                    name,
                    body=body,
                )
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def replace_status(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """PUT the status computed from `body`; 409 if the pipeline changed meanwhile."""
        meta = body["metadata"]
        obj = {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "status": dict(status),
        }
        what = f"update status of VectorPipeline {meta['namespace']}/{meta['name']}"
        try:
            self.call(
                what,
                self.custom.replace_namespaced_custom_object_status,
                GROUP,
                VERSION,
                meta["namespace"],
                PIPELINE_PLURAL,
                meta["name"],
                obj,
            )
        except ApiException as e:
            if e.status == 409:
                raise TransientError(
                    "Conflict", f"{what}: the pipeline changed meanwhile", 1.0
                ) from e
            if e.status == 404:
                return  # deleted while we computed: nothing left to report on
            raise
