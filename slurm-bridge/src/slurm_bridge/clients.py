"""Which Slurm client runs a SlurmJob, built from its `spec.slurm` and kept for reuse.

A SlurmJob with ``spec.slurm.endpoint`` talks to slurmrestd (`SlurmRestClient`);
one without it is run with ``sbatch``/``squeue``/``scancel`` on the bridge's own
host (`SlurmCliClient`, for a bridge deployed on a login node; ``--slurm-conf``
names the cluster). REST clients are cached per connection (namespace,
endpoint, user, API version, token Secret, TLS settings), so the REST version
is detected once, not on every poll. Their token provider reads the token
Secret through the Kubernetes API on every request, so a rotated token is used
at once without a restart; ``SLURM_JWT=`` prefixes (``scontrol token`` output)
are stripped, and the last token read stands in for a Secret that was deleted
(a namespace being deleted loses its Secrets before SlurmJob finalizers run). TLS verification is on unless the spec says
``insecureSkipVerify``; a CA bundle comes from ``caBundleSecretRef`` and is read
again on every pass (a new bundle makes a new client). The clients retry once,
briefly: the controller's own bounded backoff does the waiting between passes.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Callable
from typing import Protocol

from slurm_bridge.client import SlurmCliClient, SlurmClient, SlurmRestClient
from slurm_bridge.k8s import KubeApi
from slurm_bridge.options import Options
from vectorpipe_api.slurmjob import SlurmConnection
from vectorpipe_kopf.errors import TransientError

Verify = bool | ssl.SSLContext
ClientKey = tuple[str, str, str, str, str, str, str]


def token_provider(kube: KubeApi, namespace: str, name: str, key: str) -> Callable[[], str]:
    """Read the token from its Secret on every call; remember the last one for a vanished Secret.

    Deleting a namespace deletes the token Secret alongside the SlurmJobs, before
    their finalizers can cancel anything; the last token seen still works for that.
    """
    last: list[str] = []

    def read() -> str:
        try:
            token = kube.read_secret_key(namespace, name, key).strip().removeprefix("SLURM_JWT=")
        except TransientError as e:
            if e.reason == "SecretNotFound" and last:
                return last[0]
            raise
        last[:] = [token]
        return token

    return read


class ClientSource(Protocol):
    """Where a pass gets the Slurm client of a SlurmJob's connection (a fake in unit tests)."""

    def for_connection(self, namespace: str, conn: SlurmConnection) -> SlurmClient: ...

    def close(self) -> None: ...


class Clients:
    """A cache of Slurm clients keyed by everything that makes a connection different."""

    def __init__(self, kube: KubeApi, options: Options) -> None:
        self.kube = kube
        self.options = options
        self._rest: dict[ClientKey, SlurmRestClient] = {}
        self._tls: dict[str, ssl.SSLContext] = {}
        self._cli: SlurmCliClient | None = None
        self._lock = threading.Lock()

    def for_connection(self, namespace: str, conn: SlurmConnection) -> SlurmClient:
        if conn.endpoint is None:
            return self.cli()
        if conn.token_secret_ref is None:  # the CRD refuses this; the model too
            raise TransientError("NoTokenSecret", "spec.slurm.tokenSecretRef is required")
        verify, tls_id = self._verify(namespace, conn)
        ref = conn.token_secret_ref
        key: ClientKey = (
            namespace,
            conn.endpoint,
            conn.user,
            conn.api_version or "",
            ref.name,
            ref.key,
            tls_id,
        )
        with self._lock:
            client = self._rest.get(key)
            if client is None:
                client = SlurmRestClient(
                    conn.endpoint,
                    conn.user,
                    token_provider(self.kube, namespace, ref.name, ref.key),
                    verify=verify,
                    timeout=self.options.slurm_timeout,
                    retries=1,
                    backoff=0.5,
                    max_backoff=2.0,
                    version=conn.api_version,
                )
                self._rest[key] = client
            return client

    def cli(self) -> SlurmCliClient:
        with self._lock:
            if self._cli is None:
                self._cli = SlurmCliClient(
                    slurm_conf=self.options.slurm_conf,
                    timeout=self.options.slurm_timeout * 3,
                    retries=1,
                    backoff=0.5,
                    max_backoff=2.0,
                )
            return self._cli

    def _verify(self, namespace: str, conn: SlurmConnection) -> tuple[Verify, str]:
        if conn.insecure_skip_verify:
            return False, "insecure"
        ref = conn.ca_bundle_secret_ref
        if ref is None:
            return True, "system"
        pem = self.kube.read_secret_key(namespace, ref.name, ref.key)
        digest = hashlib.sha256(pem.encode()).hexdigest()
        with self._lock:
            context = self._tls.get(digest)
            if context is None:
                try:
                    context = ssl.create_default_context(cadata=pem)
                except (ssl.SSLError, ValueError) as e:
                    raise TransientError(
                        "CABundleInvalid", f"Secret {namespace}/{ref.name} key {ref.key!r}: {e}"
                    ) from e
                self._tls[digest] = context
        return context, digest

    def close(self) -> None:
        with self._lock:
            for client in self._rest.values():
                client.close()
            self._rest.clear()
