"""What every slurmrestd API version shares, and the hooks where versions differ.

A `RestAdapter` knows one REST version's paths, how to build its submit body
from a `JobRequest`, and how to read its responses into `JobInfo`,
`ControllerPing` and error entries. The transport (`SlurmRestClient`) never
looks inside a body itself. The hooks the per-version modules override are the
documented differences between Slurm releases: the shape of the environment
(map vs ``K=V`` list), node counts (``[min, max]`` vs ``"N"``), numbers (plain vs
``{set, infinite, number}``), where the script goes, ``job_state`` (string vs
list), ``exit_code`` (raw wait status vs a verbose object) and the ping and
cancel responses. Readers accept both number shapes because a response field is
an int in one release and an object in the next; the per-version fixtures in
``tests/unit/fixtures/slurm/`` pin down which one each version really sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from slurm_bridge.client.models import (
    TERMINAL_STATES,
    ControllerPing,
    JobInfo,
    JobRequest,
    decode_wait_status,
    from_epoch,
    split_state,
    state_from_string,
)

Json = dict[str, Any]


@dataclass(frozen=True)
class ErrorEntry:
    """One item of a response's ``errors[]``."""

    number: int | None
    error: str = ""
    description: str = ""
    source: str = ""

    @property
    def message(self) -> str:
        parts = [p for p in (self.error, self.description) if p]
        # v0.0.38 often repeats the short form inside the long one.
        if len(parts) == 2 and parts[0] in parts[1]:
            parts = parts[1:]
        return ": ".join(parts) or (f"Slurm error {self.number}" if self.number is not None else "")


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def read_number(value: Any) -> int | None:
    """A plain int, or a ``{set, infinite, number}`` object; unset or infinite is None."""
    if isinstance(value, Mapping):
        if value.get("infinite") or not value.get("set", True):
            return None
        return _int_or_none(value.get("number"))
    return _int_or_none(value)


class RestAdapter:
    """Shared behaviour; subclasses set `version` and override the hooks below."""

    version: ClassVar[str] = ""
    #: v0.0.38 and v0.0.39 report exit_code as the raw waitpid() status.
    exit_code_is_wait_status: ClassVar[bool] = False

    # -- paths ---------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"/slurm/{self.version}"

    def ping_path(self) -> str:
        return f"{self.prefix}/ping/"

    def jobs_path(self) -> str:
        return f"{self.prefix}/jobs/"

    def job_path(self, job_id: int) -> str:
        return f"{self.prefix}/job/{int(job_id)}"

    def submit_path(self) -> str:
        return f"{self.prefix}/job/submit"

    # -- request -------------------------------------------------------------------
    def submit_body(self, request: JobRequest) -> Json:
        return self.wrap_submit(request.script, self.job_properties(request))

    def job_properties(self, r: JobRequest) -> Json:
        job: Json = {"environment": self.encode_environment(r.full_environment())}
        for key, value in (
            ("name", r.name),
            ("comment", r.comment),
            ("partition", r.partition),
            ("account", r.account),
            ("qos", r.qos),
            ("current_working_directory", r.current_working_directory),
            ("standard_output", r.standard_output),
            ("standard_error", r.standard_error),
            ("tasks", r.ntasks),
            ("tasks_per_node", r.ntasks_per_node),
            ("cpus_per_task", r.cpus_per_task),
        ):
            if value is not None:
                job[key] = value
        if r.nodes is not None:
            job["nodes"] = self.encode_nodes(r.nodes)
        if r.time_limit is not None:
            job["time_limit"] = self.encode_number(r.time_limit)
        if r.requeue is not None:
            job.update(self.encode_requeue(r.requeue))
        return job

    def wrap_submit(self, script: str, job: Json) -> Json:
        return {"script": script, "job": job}

    def encode_environment(self, env: Mapping[str, str]) -> Any:
        return [f"{k}={v}" for k, v in env.items()]

    def encode_nodes(self, count: int) -> Any:
        return str(count)

    def encode_requeue(self, requeue: bool) -> Json:
        return {"requeue": requeue}

    def encode_number(self, value: int) -> Any:
        return {"set": True, "infinite": False, "number": value}

    # -- responses -----------------------------------------------------------------
    def errors(self, body: Any) -> list[ErrorEntry]:
        if not isinstance(body, Mapping):
            return []
        entries = []
        for e in body.get("errors") or []:
            if not isinstance(e, Mapping):
                continue
            # v0.0.38 submit errors say error_code, everything else error_number.
            number = _int_or_none(e.get("error_number", e.get("error_code")))
            entries.append(
                ErrorEntry(
                    number=number,
                    error=str(e.get("error") or ""),
                    description=str(e.get("description") or ""),
                    source=str(e.get("source") or ""),
                )
            )
        return entries

    def parse_submit(self, body: Json) -> int | None:
        job_id = read_number(body.get("job_id"))
        if job_id is None and isinstance(body.get("result"), Mapping):
            job_id = read_number(body["result"].get("job_id"))
        return job_id or None

    def parse_jobs(self, body: Json) -> list[JobInfo]:
        return [self.parse_job(j) for j in body.get("jobs") or [] if isinstance(j, Mapping)]

    def parse_job(self, raw: Mapping[str, Any]) -> JobInfo:
        state, flags = self.read_state(raw.get("job_state"))
        exit_code, signal = self.read_exit(raw.get("exit_code"))
        start = from_epoch(read_number(raw.get("start_time")))
        end = from_epoch(read_number(raw.get("end_time")))
        if state not in TERMINAL_STATES:
            # Before the end Slurm reports 0 as exit code and the *expected* end
            # (and, while pending, the expected start): none of them facts yet.
            exit_code, signal, end = None, None, None
            if state == "PENDING":
                start = None
        return JobInfo(
            job_id=read_number(raw.get("job_id")) or 0,
            name=str(raw.get("name") or ""),
            comment=str(raw.get("comment") or ""),
            state=state,
            flags=flags,
            state_reason=self.read_reason(raw),
            exit_code=exit_code,
            signal=signal,
            start_time=start,
            end_time=end,
            nodes=str(raw.get("nodes") or ""),
            partition=str(raw.get("partition") or ""),
            user_name=str(raw.get("user_name") or ""),
            raw=dict(raw),
        )

    def read_state(self, value: Any) -> tuple[str, tuple[str, ...]]:
        if isinstance(value, list | tuple):
            return split_state([str(v) for v in value])
        if isinstance(value, str) and value:
            return state_from_string(value)
        return "UNKNOWN", ()

    def read_reason(self, raw: Mapping[str, Any]) -> str:
        reason = str(raw.get("state_reason") or "")
        return "" if reason == "None" else reason

    def read_exit(self, value: Any) -> tuple[int | None, int | None]:
        if isinstance(value, Mapping) and ("return_code" in value or "status" in value):
            return self._read_verbose_exit(value)
        number = read_number(value)
        if self.exit_code_is_wait_status:
            return decode_wait_status(number)
        return number, None

    @staticmethod
    def _read_verbose_exit(value: Mapping[str, Any]) -> tuple[int | None, int | None]:
        """``{status: [...], return_code: {...}, signal: {id: {...}, name}}`` (v0.0.40+)."""
        code = read_number(value.get("return_code"))
        signal_obj = value.get("signal")
        signal = read_number(signal_obj.get("id")) if isinstance(signal_obj, Mapping) else None
        status = [str(s) for s in value.get("status") or []]
        if "PENDING" in status:
            return None, None
        return code, signal

    def parse_ping(self, body: Json) -> list[ControllerPing]:
        pings = []
        for p in body.get("pings") or []:
            if isinstance(p, Mapping):
                pings.append(
                    ControllerPing(
                        hostname=str(p.get("hostname") or ""),
                        responding=self.ping_responding(p),
                        mode=str(p.get("mode") or ""),
                    )
                )
        return pings

    def ping_responding(self, ping: Mapping[str, Any]) -> bool:
        return str(ping.get("pinged", "")).upper() == "UP"

    def cancel_errors(self, body: Json) -> list[ErrorEntry]:
        """Per-job failures in a 200 cancel response's ``status[]``.

        Only v0.0.42 documents ``status[]`` (openapi_kill_job_resp), but 24.11 runs
        one DELETE handler for every version it serves, so every adapter reads it.
        """
        failures = []
        for item in body.get("status") or []:
            error = item.get("error") if isinstance(item, Mapping) else None
            code = read_number(error.get("code")) if isinstance(error, Mapping) else None
            if isinstance(error, Mapping) and code:
                failures.append(
                    ErrorEntry(
                        number=code,
                        error=str(error.get("string") or ""),
                        description=str(error.get("message") or ""),
                        source="kill_jobs",
                    )
                )
        return failures
