"""The one module of the bridge that talks to the Kubernetes API.

`Kube` reads a SlurmJob fresh (a Kopf body may be older than the status the
previous pass wrote), reads one key of a Secret or ConfigMap (the slurmrestd
token and CA bundle, read again on every use so rotation needs no restart),
merge-patches a SlurmJob's status through the status subresource (keys that
disappeared are sent as null so they are removed), and posts Events through
Kopf's poster. Every API failure is sorted here: 429, 5xx, timeouts, dropped
connections and RBAC refusals become `TransientError`; a missing Secret or
key is a `TransientError` too (it may be created later), never a crash. The
client configuration is loaded by `load_config` at start-up, never at import.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Mapping
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from slurm_bridge import runtime
from slurm_bridge.bridge_errors import TransientError
from slurm_bridge.spec import API_GROUP, API_VERSION, PLURAL

# (connect, read) seconds: a hung API server becomes a TransientError, not a stuck pass.
REQUEST_TIMEOUT = (5.0, 30.0)


def load_config() -> None:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def _api_problem(exc: BaseException, what: str) -> TransientError | None:
    if isinstance(exc, ApiException):
        code = int(exc.status or 0)
        if code == 429 or code >= 500 or code == 0:
            return TransientError("KubernetesUnavailable", f"{what}: HTTP {code} {exc.reason}")
        if code in (401, 403):
            return TransientError("Forbidden", f"{what}: HTTP {code}; check the bridge's RBAC")
        return None
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return TransientError("KubernetesUnavailable", f"{what}: {type(exc).__name__}: {exc}")
    return None


class Kube:
    """The few endpoints the bridge needs."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except Exception as e:
            problem = _api_problem(e, what)
            if problem is None:
                raise
            raise problem from e

    def _as_dict(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, dict):
            return obj
        return cast(dict[str, Any], self.api_client.sanitize_for_serialization(obj))

    # -- SlurmJobs ----------------------------------------------------------------------------
    def get_slurmjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        what = f"get SlurmJob {namespace}/{name}"
        try:
            return self._as_dict(
                self._call(
                    what,
                    self.custom.get_namespaced_custom_object,
                    API_GROUP,
                    API_VERSION,
                    namespace,
                    PLURAL,
                    name,
                )
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def patch_status(
        self, namespace: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """Merge-patch `.status` from `old` to `new` (removed keys become null)."""
        patch = {**{k: None for k in old if k not in new}, **new}
        what = f"update status of SlurmJob {namespace}/{name}"
        try:
            self._call(
                what,
                self.custom.patch_namespaced_custom_object_status,
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                name,
                {"status": patch},
            )
        except ApiException as e:
            if e.status == 404:
                return  # deleted meanwhile: nothing left to report on
            if e.status == 422:
                raise TransientError("StatusRejected", f"{what}: {e.body}") from e
            raise

    # -- configuration objects -----------------------------------------------------------------
    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        what = f"read Secret {namespace}/{name}"
        try:
            secret = self._call(what, self.core.read_namespaced_secret, name, namespace)
        except ApiException as e:
            if e.status == 404:
                raise TransientError(
                    "SecretNotFound", f"Secret {namespace}/{name} not found"
                ) from e
            raise
        raw = (secret.data or {}).get(key)
        if raw is None:
            raise TransientError(
                "SecretKeyNotFound", f"Secret {namespace}/{name} has no key {key!r}"
            )
        try:
            return base64.b64decode(raw).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise TransientError(
                "SecretKeyInvalid", f"Secret {namespace}/{name} key {key!r}: {e}"
            ) from e

    # -- events ----------------------------------------------------------------------------------
    def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        runtime.post_event(body, type_, reason, message)


@functools.cache
def kube() -> Kube:
    """The process-wide `Kube`, created on first use (after `load_config`)."""
    return Kube()
