"""`SlurmCliClient`: the same interface over sbatch, squeue, sacct, scancel and scontrol.

For a bridge that runs on a login node, where the Slurm commands work and no
slurmrestd is needed. The job script goes to ``sbatch --parsable`` on stdin with
the request as command-line options, in an environment made of the request's
variables only (plus ``SLURM_CONF`` when the client was given one), so a job sees
the same environment it would get through REST. Queries read ``squeue --json``,
whose format is one of the REST versions (its ``meta.plugin.type`` says which),
so the REST adapters parse it; a job squeue has forgotten is looked up in sacct
when accounting is enabled. Errors map from stderr to the same typed errors as
the REST client, and the same retry policy applies.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slurm_bridge.client.adapter import RestAdapter
from slurm_bridge.client.models import ControllerPing, JobInfo, JobRequest, state_from_string
from slurm_bridge.client.responses import classify
from slurm_bridge.client.retry import RetryPolicy
from slurm_bridge.client.v0038 import V0038
from slurm_bridge.client.versions import ADAPTERS, SUPPORTED_VERSIONS, version_key
from slurm_bridge.errors import (
    SlurmAuthError,
    SlurmError,
    SlurmNotFound,
    SlurmRejected,
    SlurmUnavailable,
)

_UNREACHABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|"
    r"Zero Bytes were transmitted|Communication connection failure|Slurm backup controller",
    re.IGNORECASE,
)
_CONNECT_FAILURE = re.compile(r"connect failure|Connection refused", re.IGNORECASE)
_AUTH = re.compile(r"authentication|credential|munge", re.IGNORECASE)
_SACCT_FIELDS = "JobID,JobName,State,ExitCode,Start,End,NodeList,Reason,Partition,User,Comment"


def _adapter_for_plugin(meta: Mapping[str, Any]) -> RestAdapter:
    plugin = meta.get("plugin") if isinstance(meta, Mapping) else None
    kind = str(plugin.get("type", "")) if isinstance(plugin, Mapping) else ""
    match = re.search(r"v\d+\.\d+\.\d+", kind)
    version = match.group(0) if match else SUPPORTED_VERSIONS[-1]
    if version in ADAPTERS:
        return ADAPTERS[version]()
    # Older than we know reads like v0.0.38; newer like the newest we know.
    if version_key(version) < version_key(SUPPORTED_VERSIONS[0]):
        return V0038()
    return ADAPTERS[SUPPORTED_VERSIONS[-1]]()


def _sacct_time(value: str) -> dt.datetime | None:
    try:
        # sacct prints local time without an offset.
        return dt.datetime.fromisoformat(value).astimezone(dt.UTC)
    except ValueError:
        return None


class SlurmCliClient:
    """Slurm through its command-line tools on this host."""

    def __init__(
        self,
        *,
        slurm_conf: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.slurm_conf = slurm_conf
        self.timeout = timeout
        self.retry = RetryPolicy(max(0, retries), backoff, max_backoff, sleep)

    # -- operations ------------------------------------------------------------------------
    def submit(self, request: JobRequest) -> int:
        argv = ["sbatch", "--parsable", "--export=ALL", *self._sbatch_options(request)]
        env = request.full_environment()
        out = self.retry.call(
            lambda: self._run(argv, what="job submission", stdin=request.script, env=env),
            idempotent=False,
        )
        first = out.strip().splitlines()[-1] if out.strip() else ""
        job_id = first.split(";", 1)[0]
        if not job_id.isdigit():
            raise SlurmRejected(f"sbatch printed no job id: {out.strip()!r}")
        return int(job_id)

    def get_job(self, job_id: int) -> JobInfo | None:
        jobs = self._squeue(["--jobs", str(int(job_id))])
        found = [j for j in jobs if j.job_id == int(job_id)]
        return found[0] if found else self._sacct(int(job_id))

    def list_jobs(self) -> list[JobInfo]:
        return self._squeue([])

    def find_by_comment(self, text: str) -> list[JobInfo]:
        return [j for j in self.list_jobs() if j.comment == text]

    def find_by_name(self, name: str) -> list[JobInfo]:
        return [j for j in self.list_jobs() if j.name == name]

    def cancel(self, job_id: int) -> None:
        what = f"cancellation of job {job_id}"

        def attempt() -> None:
            # scancel exits 0 even for unknown jobs; only -v prints why.
            proc = self._run_proc(["scancel", "-v", str(int(job_id))], what)
            errors = [line for line in proc.stderr.splitlines() if "error:" in line]
            if any("Invalid job id" in e for e in errors):
                raise SlurmNotFound(f"{what}: Invalid job id specified")
            errors = [e for e in errors if "already completing or completed" not in e]
            if proc.returncode != 0 or errors:
                raise self._error(what, proc.returncode, "\n".join(errors) or proc.stderr)

        self.retry.call(attempt)

    def ping(self) -> list[ControllerPing]:
        def attempt() -> list[ControllerPing]:
            proc = self._run_proc(["scontrol", "ping"], "ping")
            pings = []
            for line in proc.stdout.splitlines():
                m = re.match(r"\s*Slurmctld\((\w+)\) at (\S+) is (\w+)", line)
                if m:
                    up = m.group(3) == "UP"
                    pings.append(
                        ControllerPing(hostname=m.group(2), responding=up, mode=m.group(1))
                    )
            if not pings:
                raise self._error("ping", proc.returncode, proc.stderr or proc.stdout)
            return pings

        result: list[ControllerPing] = self.retry.call(attempt)
        return result

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _sbatch_options(r: JobRequest) -> list[str]:
        options = {
            "--job-name": r.name,
            "--comment": r.comment,
            "--nodes": r.nodes,
            "--ntasks": r.ntasks,
            "--ntasks-per-node": r.ntasks_per_node,
            "--cpus-per-task": r.cpus_per_task,
            "--partition": r.partition,
            "--time": r.time_limit,
            "--account": r.account,
            "--qos": r.qos,
            "--chdir": r.current_working_directory,
            "--output": r.standard_output,
            "--error": r.standard_error,
        }
        flags = [f"{k}={v}" for k, v in options.items() if v is not None]
        if r.requeue is not None:
            flags.append("--requeue" if r.requeue else "--no-requeue")
        return flags

    def _squeue(self, extra: Sequence[str]) -> list[JobInfo]:
        argv = ["squeue", "--json", "--states=all", *extra]

        def run() -> str:
            proc = self._run_proc(argv, "job query")
            if proc.returncode != 0:
                if "Invalid job id" in proc.stderr:
                    return '{"jobs": []}'
                raise self._error("job query", proc.returncode, proc.stderr)
            return proc.stdout

        def load() -> Any:
            try:
                body = json.loads(run())
            except json.JSONDecodeError as exc:
                raise SlurmRejected(f"squeue --json printed no JSON: {exc}") from exc
            adapter = _adapter_for_plugin(body.get("meta") or {})
            # squeue --json exits 0 even when slurmctld is unreachable (22.05); the
            # failure is only in errors[], worded as slurmrestd would word it.
            verdict = classify(500, adapter.errors(body), what="job query")
            if body.get("errors") and verdict is not None:
                if isinstance(verdict.error, SlurmNotFound):
                    return []
                raise verdict.error
            return adapter.parse_jobs(body)

        jobs: list[JobInfo] = self.retry.call(load)
        return jobs

    def _sacct(self, job_id: int) -> JobInfo | None:
        argv = ["sacct", "-n", "-P", "-X", "-j", str(job_id), "-o", _SACCT_FIELDS]
        proc = self.retry.call(lambda: self._run_proc(argv, f"accounting query of job {job_id}"))
        if proc.returncode != 0:
            # No slurmdbd: squeue was the only source and it has forgotten the job.
            if "accounting storage is disabled" in proc.stderr:
                return None
            raise self._error("sacct", proc.returncode, proc.stderr)
        for line in proc.stdout.splitlines():
            f = line.split("|")
            if len(f) < 11 or f[0] != str(job_id):
                continue
            state, flags = state_from_string(f[2])
            code, _, sig = f[3].partition(":")
            return JobInfo(
                job_id=job_id, name=f[1], comment=f[10], state=state, flags=flags,
                state_reason="" if f[7] == "None" else f[7],
                exit_code=int(code) if code.isdigit() else None,
                signal=int(sig) if sig.isdigit() and int(sig) else None,
                start_time=_sacct_time(f[4]), end_time=_sacct_time(f[5]),
                nodes="" if f[6] == "None assigned" else f[6], partition=f[8], user_name=f[9],
            )  # fmt: skip
        return None

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str] | None:
        if extra is None and self.slurm_conf is None:
            return None  # inherit ours
        env = dict(extra) if extra is not None else dict(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env

    def _run_proc(
        self,
        argv: list[str],
        what: str,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv, input=stdin, capture_output=True, text=True, timeout=self.timeout,
                env=self._env(env), check=False,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise SlurmRejected(f"{what}: {argv[0]} is not installed on this host") from exc
        except subprocess.TimeoutExpired as exc:
            raise SlurmUnavailable(
                f"{what}: {argv[0]} did not finish within {self.timeout:.0f}s"
            ) from exc

    def _run(
        self,
        argv: list[str],
        what: str,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        proc = self._run_proc(argv, what, stdin, env)
        if proc.returncode != 0:
            raise self._error(what, proc.returncode, proc.stderr)
        return proc.stdout

    @staticmethod
    def _error(what: str, code: int, stderr: str) -> SlurmError:
        lines = [re.sub(r"^\w+: error: ", "", ln).strip() for ln in stderr.strip().splitlines()]
        lines = [ln for ln in lines if ln] or [f"exit code {code}"]
        text = " ".join(lines)
        message = f"{what}: {text}"
        if _UNREACHABLE.search(text):
            return SlurmUnavailable(
                message, messages=lines, request_sent=not _CONNECT_FAILURE.search(text)
            )
        if _AUTH.search(text):
            return SlurmAuthError(message, messages=lines)
        return SlurmRejected(message, messages=lines)
