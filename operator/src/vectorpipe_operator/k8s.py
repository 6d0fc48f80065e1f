"""The one module that talks to the Kubernetes API.

`Kube` reads pipelines and their children, creates a child only when it is
absent (a 409 from a concurrent or earlier create adopts the existing object
if it carries our owner reference, and is a conflict otherwise), replaces a
pipeline's status through the status subresource with the resourceVersion it
was computed from (so a stale computation gets a 409 and is retried instead
of overwriting a newer status), and posts Events through Kopf's poster.
Every API failure is sorted here: 429, 5xx, timeouts, dropped connections
and RBAC refusals become `TransientError` (honouring Retry-After); a child the API
refuses as invalid becomes `InvalidStateError`. The client configuration is loaded by
`load_config` at operator start-up, never at import.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from slurm_bridge import runtime
from vectorpipe_operator.errors import InvalidStateError, ReconcileError, TransientError
from vectorpipe_operator.resources import (
    GROUP,
    PIPELINE_PLURAL,
    RAY_GROUP,
    RAY_VERSION,
    RAYJOB_KIND,
    RAYJOB_PLURAL,
    SLURMJOB_KIND,
    SLURMJOB_PLURAL,
    VERSION,
    owned_by,
)

# (connect, read) seconds for every request: a hung API server must turn into
# a TransientError, not a handler stuck until Kopf's own timeout.
REQUEST_TIMEOUT = (5.0, 30.0)

# kind -> (group, version, plural) for the custom resources we touch.
CUSTOM: dict[str, tuple[str, str, str]] = {
    RAYJOB_KIND: (RAY_GROUP, RAY_VERSION, RAYJOB_PLURAL),
    SLURMJOB_KIND: (GROUP, VERSION, SLURMJOB_PLURAL),
}


def load_config() -> None:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify(exc: BaseException, what: str) -> ReconcileError | None:
    """What an API failure means for the pipeline (None: not an API failure)."""
    if isinstance(exc, ApiException):
        code = int(exc.status or 0)
        detail = f"{what}: HTTP {code} {exc.reason}"
        if code == 429 or code >= 500 or code == 0:
            return TransientError("APIUnavailable", detail, delay=_retry_after(exc))
        if code in (401, 403):
            # RBAC may be granted after the operator starts; bounded retries.
            return TransientError("Forbidden", detail)
        if code in (400, 422):
            return InvalidStateError("ChildRejected", f"{detail}: {_api_message(exc)}")
        return None
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return TransientError("APIUnavailable", f"{what}: {type(exc).__name__}: {exc}")
    return None


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", exc.body))
    except ValueError:
        return str(exc.body)


class Kube:
    """Typed-enough access to the few endpoints the operator needs."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except Exception as e:
            problem = classify(e, what)
            if problem is None:
                raise
            raise problem from e

    def _get_or_none(self, what: str, fn: Any, *args: Any) -> dict[str, Any] | None:
        try:
            return self._as_dict(self._call(what, fn, *args))
        except ApiException as e:  # what `classify` left unsorted, e.g. 404
            if e.status == 404:
                return None
            raise

    def _as_dict(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, dict):
            return obj
        data: dict[str, Any] = self.api_client.sanitize_for_serialization(obj)
        return data

    # -- reads -------------------------------------------------------------
    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(
            f"get VectorPipeline {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PIPELINE_PLURAL,
            name,
        )

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        what = f"get {kind} {namespace}/{name}"
        if kind == "ConfigMap":
            return self._get_or_none(what, self.core.read_namespaced_config_map, name, namespace)
        group, version, plural = CUSTOM[kind]
        return self._get_or_none(
            what, self.custom.get_namespaced_custom_object, group, version, namespace, plural, name
        )

    # -- create-if-absent --------------------------------------------------
    def _create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind, meta = str(obj["kind"]), obj["metadata"]
        what = f"create {kind} {meta['namespace']}/{meta['name']}"
        if kind == "ConfigMap":
            created = self._call(
                what, self.core.create_namespaced_config_map, meta["namespace"], obj
            )
        else:
            group, version, plural = CUSTOM[kind]
            created = self._call(
                what,
                self.custom.create_namespaced_custom_object,
                group,
                version,
                meta["namespace"],
                plural,
                obj,
            )
        return self._as_dict(created)

    def ensure(self, obj: Mapping[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
        """The child named like `obj`, created if absent; True if this call created it.

        Never updates an existing child: children are built from an immutable
        spec, and re-submitting a RayJob or SlurmJob is exactly what must not
        happen.
        """
        kind, meta = str(obj["kind"]), obj["metadata"]
        existing = self.get(kind, meta["namespace"], meta["name"])
        if existing is None:
            try:
                return self._create(obj), True
            except ApiException as e:
                if e.status != 409:
                    raise
            existing = self.get(kind, meta["namespace"], meta["name"])
            if existing is None:
                raise TransientError(
                    "APIUnavailable", f"{kind} {meta['name']} vanished after a conflict"
                )
        if not owned_by(existing, owner_uid):
            raise InvalidStateError(
                "ChildConflict",
                f"{kind} {meta['namespace']}/{meta['name']} exists and is not owned by this "
                "pipeline; delete it or rename the pipeline",
            )
        return existing, False

    # -- status and events -------------------------------------------------
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
            self._call(
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

    def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        runtime.post_event(body, type_, reason, message)


@functools.cache
def kube() -> Kube:
    """The process-wide `Kube`, created on first use (after `load_config`)."""
    return Kube()
