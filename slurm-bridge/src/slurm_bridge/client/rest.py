"""`SlurmRestClient`: slurmrestd over HTTP(S) with JWT, any supported REST version.

Every request carries ``X-SLURM-USER-NAME`` and ``X-SLURM-USER-TOKEN``; the token
comes from `token_provider`, called per request so a rotated Secret is used at
once, and re-read once more when Slurm refuses it. The REST version is detected
lazily from the server's OpenAPI document (newest one both sides speak) unless
pinned with `version`. Failures become the typed errors of `slurm_bridge.errors`;
only `SlurmUnavailable` is retried, with exponential backoff and jitter, at most
`retries` times. A submit is retried only when the request provably never
reached slurmctld, so a timeout can never turn into two jobs. TLS verification
is on by default; `verify` may name a CA bundle file or be an `ssl.SSLContext`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

from slurm_bridge.client.adapter import ErrorEntry, Json, RestAdapter
from slurm_bridge.client.auth import TokenProvider, check_token
from slurm_bridge.client.models import ControllerPing, JobInfo, JobRequest, check_script
from slurm_bridge.client.responses import ALREADY_DONE, INVALID_JOB_ID, classify
from slurm_bridge.client.retry import RetryPolicy
from slurm_bridge.client.versions import adapter_for, pick_version, versions_in_openapi
from slurm_bridge.errors import (
    SlurmAuthError,
    SlurmError,
    SlurmNotFound,
    SlurmRejected,
    SlurmUnavailable,
)

OPENAPI_PATHS = ("/openapi/v3", "/openapi", "/openapi.json")


class SlurmRestClient:
    """A synchronous slurmrestd client; see the module docstring for the contract."""

    def __init__(
        self,
        base_url: str,
        user: str,
        token_provider: TokenProvider,
        *,
        verify: bool | str | ssl.SSLContext = True,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        version: str | None = None,
        validate_token: bool = True,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.token_provider = token_provider
        self.retry = RetryPolicy(max(0, retries), backoff, max_backoff, sleep)
        self.validate_token = validate_token
        self._adapter: RestAdapter | None = adapter_for(version) if version else None
        # httpx wants a context for a CA bundle path (a str `verify` is deprecated).
        tls = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self._http = httpx.Client(
            base_url=self.base_url, verify=tls, timeout=timeout, transport=transport
        )

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SlurmRestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- version -----------------------------------------------------------------------
    @property
    def adapter(self) -> RestAdapter:
        if self._adapter is None:
            self._adapter = adapter_for(self.detect_version())
        return self._adapter

    @property
    def version(self) -> str:
        return self.adapter.version

    def detect_version(self) -> str:
        """Ask the server which versions it serves and pick the newest shared one."""
        last: SlurmError | None = None
        for path in OPENAPI_PATHS:
            try:
                document = self._request("GET", path, what=f"GET {path}")
            except (SlurmRejected, SlurmNotFound) as exc:
                last = exc
                continue
            offered = versions_in_openapi(document)
            if offered:
                return pick_version(offered)
        raise SlurmRejected(
            f"slurmrestd at {self.base_url} publishes no usable OpenAPI document ({last})"
        )

    # -- operations ----------------------------------------------------------------------
    def submit(self, request: JobRequest) -> int:
        check_script(request.script)
        a = self.adapter
        body = self._request(
            "POST",
            a.submit_path(),
            json=a.submit_body(request),
            idempotent=False,
            what="job submission",
        )
        job_id = a.parse_submit(body)
        if job_id is None:
            errors = a.errors(body)
            raise SlurmRejected(
                "slurmrestd accepted the submission but returned no job id",
                messages=[e.message for e in errors if e.message],
                error_numbers=[e.number for e in errors if e.number is not None],
            )
        return job_id

    def get_job(self, job_id: int) -> JobInfo | None:
        a = self.adapter
        try:
            body = self._request("GET", a.job_path(job_id), what=f"query of job {job_id}")
        except SlurmNotFound:
            return None
        jobs = [j for j in a.parse_jobs(body) if j.job_id == int(job_id)]
        return jobs[0] if jobs else None

    def list_jobs(self) -> list[JobInfo]:
        a = self.adapter
        return a.parse_jobs(self._request("GET", a.jobs_path(), what="job listing"))

    def find_by_comment(self, text: str) -> list[JobInfo]:
        return [j for j in self.list_jobs() if j.comment == text]

    def find_by_name(self, name: str) -> list[JobInfo]:
        return [j for j in self.list_jobs() if j.name == name]

    def cancel(self, job_id: int) -> None:
        a = self.adapter
        what = f"cancellation of job {job_id}"
        try:
            body = self._request("DELETE", a.job_path(job_id), what=what)
        except SlurmRejected as exc:
            if ALREADY_DONE in exc.error_numbers:
                return
            raise
        failures = [e for e in a.cancel_errors(body) if e.number != ALREADY_DONE]
        if failures:
            numbers = [e.number for e in failures if e.number is not None]
            cls = SlurmNotFound if INVALID_JOB_ID in numbers else SlurmRejected
            raise cls(
                f"{what}: {'; '.join(e.message for e in failures)}",
                error_numbers=numbers,
                messages=[e.message for e in failures],
            )

    def ping(self) -> list[ControllerPing]:
        a = self.adapter
        return a.parse_ping(self._request("GET", a.ping_path(), what="ping"))

    # -- transport -----------------------------------------------------------------------
    def _token(self) -> str:
        token = self.token_provider()
        if self.validate_token:
            try:
                check_token(token)
            except SlurmAuthError:
                # Maybe the Secret rotated between two reads: one more look.
                token = self.token_provider()
                check_token(token)
        return token

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        idempotent: bool = True,
        what: str = "request",
    ) -> Json:
        return self.retry.call(
            lambda: self._request_once(method, path, json, what), idempotent=idempotent
        )

    def _request_once(self, method: str, path: str, json: Json | None, what: str) -> Json:
        token = self._token()
        response = self._send(method, path, json, token, what)
        verdict = classify(response.status_code, self._errors(response), response.text, what)
        if verdict is not None and (
            verdict.maybe_auth or isinstance(verdict.error, SlurmAuthError)
        ):
            fresh = self._token()
            if fresh != token:
                response = self._send(method, path, json, fresh, what)
                verdict = classify(
                    response.status_code, self._errors(response), response.text, what
                )
        if verdict is not None:
            raise verdict.error
        body = self._json(response)
        return body if isinstance(body, dict) else {"value": body}

    def _send(
        self, method: str, path: str, json: Json | None, token: str, what: str
    ) -> httpx.Response:
        headers = {
            "X-SLURM-USER-NAME": self.user,
            "X-SLURM-USER-TOKEN": token,
            "Accept": "application/json",
        }
        try:
            return self._http.request(method, path, json=json, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise SlurmUnavailable(
                f"{what}: cannot connect to slurmrestd at {self.base_url}: {exc}",
                request_sent=False,
            ) from exc
        except httpx.TransportError as exc:
            raise SlurmUnavailable(
                f"{what}: slurmrestd at {self.base_url} did not answer: {type(exc).__name__}: {exc}"
            ) from exc

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _errors(self, response: httpx.Response) -> list[ErrorEntry]:
        body = self._json(response)
        # Error entries read the same in every version; any adapter can parse them.
        return (self._adapter or RestAdapter()).errors(body)
