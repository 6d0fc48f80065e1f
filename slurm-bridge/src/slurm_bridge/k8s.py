"""The one module of the bridge that talks to the Kubernetes API.

`KubeApi` is what a pass may do with the API, as a Protocol: read a SlurmJob
fresh (a Kopf body may be older than the status the previous pass wrote),
read one key of a Secret (the slurmrestd token and CA bundle, read again on
every use so rotation needs no restart), merge-patch a SlurmJob's status
through the status subresource (keys that disappeared are sent as null so
they are removed), and post Events. `Kube` is the real implementation on
`vectorpipe_kopf.kube.KubeBase`, which sorts every API failure: 429, 5xx,
timeouts, dropped connections and RBAC refusals become `TransientError`; a
missing Secret or key is a `TransientError` too (it may be created later),
never a crash. Unit tests pass a typed fake. The client configuration is
loaded at start-up, never at import.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from vectorpipe_api.meta import GROUP, SLURMJOB_KIND, SLURMJOB_PLURAL, VERSION
from vectorpipe_kopf.errors import InvalidStateError, TransientError
from vectorpipe_kopf.kube import KubeBase, load_config

__all__ = ["Kube", "KubeApi", "load_config"]


class KubeApi(Protocol):
    """What a pass of the bridge may ask of the Kubernetes API."""

    def get_slurmjob(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def patch_status(
        self, namespace: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None: ...

    def read_secret_key(self, namespace: str, name: str, key: str) -> str: ...

    def post_event(
        self, body: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None: ...


class Kube(KubeBase):
    """The real `KubeApi`."""

    def get_slurmjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get_custom((GROUP, VERSION, SLURMJOB_PLURAL), namespace, name, SLURMJOB_KIND)

    def patch_status(
        self, namespace: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """Merge-patch `.status` from `old` to `new` (removed keys become null)."""
        patch = {**{k: None for k in old if k not in new}, **new}
        what = f"update status of SlurmJob {namespace}/{name}"
        try:
            self.call(
                what,
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                SLURMJOB_PLURAL,
                name,
                {"status": patch},
            )
        except InvalidStateError as e:
            # A status the schema refuses is our bug, not the job's: keep
            # retrying (and showing it) rather than failing the SlurmJob.
            raise TransientError("StatusRejected", e.message) from e
        except ApiException as e:
            if e.status == 404:
                return  # deleted meanwhile: nothing left to report on
            raise

    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        what = f"read Secret {namespace}/{name}"
        try:
            secret = self.call(what, self.core.read_namespaced_secret, name, namespace)
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
