"""The Kubernetes client base both controllers build their one API module on.

`load_config` picks in-cluster credentials in a pod, else the kubeconfig; it
runs at start-up, never at import. `classify` sorts every API failure once,
for both controllers: 429, 5xx, timeouts and dropped connections become a
`TransientError` (honouring Retry-After), and so do RBAC refusals (a role may
be granted after the controller starts); an object the API refuses as
invalid becomes an `InvalidStateError`; anything else (a 404, a 409) is left
to the caller, which knows what it means there. `KubeBase` makes every call
with a bounded timeout through `call`, returns plain dicts, and posts Events
through Kopf's poster.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from vectorpipe_kopf.errors import InvalidStateError, ReconcileError, TransientError
from vectorpipe_kopf.shell import post_event

# (connect, read) seconds for every request: a hung API server must turn into
# a TransientError, not a pass stuck until Kopf's own handler timeout.
REQUEST_TIMEOUT = (5.0, 30.0)
UNAVAILABLE = "KubernetesUnavailable"


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


def api_message(exc: ApiException) -> str:
    """The API server's own message from an error response (the body if not JSON)."""
    try:
        return str(json.loads(exc.body or "{}").get("message", exc.body))
    except ValueError:
        return str(exc.body)


def classify(exc: BaseException, what: str) -> ReconcileError | None:
    """What an API failure means for the object being reconciled (None: for the caller)."""
    if isinstance(exc, ApiException):
        code = int(exc.status or 0)
        detail = f"{what}: HTTP {code} {exc.reason}"
        if code == 429 or code >= 500 or code == 0:
            return TransientError(UNAVAILABLE, detail, delay=_retry_after(exc))
        if code in (401, 403):
            return TransientError("Forbidden", f"{detail}; check the controller's RBAC")
        if code in (400, 422):
            return InvalidStateError("Rejected", f"{detail}: {api_message(exc)}")
        return None
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return TransientError(UNAVAILABLE, f"{what}: {type(exc).__name__}: {exc}")
    return None


class KubeBase:
    """Calls with a timeout, sorted failures, dict results, Events."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args)` with the request timeout; API failures sorted by `classify`."""
        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except Exception as e:
            problem = classify(e, what)
            if problem is None:
                raise
            raise problem from e

    def get_or_none(self, what: str, fn: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        """A read that answers None for 404 instead of raising."""
        try:
            return self.as_dict(self.call(what, fn, *args))
        except ApiException as e:  # what `classify` left to us
            if e.status == 404:
                return None
            raise

    def get_custom(
        self, coords: tuple[str, str, str], namespace: str, name: str, kind: str
    ) -> dict[str, Any] | None:
        """One custom object by (group, version, plural), or None if it does not exist."""
        group, version, plural = coords
        return self.get_or_none(
            f"get {kind} {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            name,
        )

    def as_dict(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, dict):
            return obj
        return cast(dict[str, Any], self.api_client.sanitize_for_serialization(obj))

    def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        post_event(body, type_, reason, message)
