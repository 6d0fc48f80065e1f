"""The bridge's own settings: command-line flags, each with an environment twin for Helm.

`Options` is plain data built once at start-up (`from_env` for ``kopf run``,
the flags of ``python -m slurm_bridge`` otherwise) and handed to the handlers
through Kopf's memo. It holds the poll interval and the cap of every retry
delay, the client timeouts, the ``slurm.conf`` the CLI backend uses (a
SlurmJob without ``spec.slurm.endpoint`` is run with sbatch on the bridge's
own host), and the site settings that shape every generated job: whether
``mpirun`` gets ``--allow-run-as-root`` (only for rigs whose jobs run as root,
such as the tests), environment variables every job starts with (spec values
win) and a working directory for specs that set none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from slurm_bridge.script import ScriptOptions

ENV_PREFIX = "SLURM_BRIDGE_"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def parse_env_pairs(pairs: list[str] | str) -> dict[str, str]:
    """``["A=1", "B=2"]`` or ``"A=1,B=2"`` as a dict; a pair without ``=`` is an error."""
    items = pairs.split(",") if isinstance(pairs, str) else pairs
    out: dict[str, str] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        out[key] = value
    return out


@dataclass(frozen=True)
class Options:
    poll_interval: float = 5.0
    max_backoff: float = 60.0
    delete_backoff: float = 30.0
    slurm_timeout: float = 20.0
    slurm_conf: str | None = None
    mpirun_allow_run_as_root: bool = False
    job_environment: Mapping[str, str] = field(default_factory=dict)
    default_working_directory: str | None = None

    @property
    def script(self) -> ScriptOptions:
        return ScriptOptions(
            mpirun_allow_run_as_root=self.mpirun_allow_run_as_root,
            job_environment=dict(self.job_environment),
            default_working_directory=self.default_working_directory,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Options:
        e = os.environ if env is None else env

        def get(name: str) -> str | None:
            return e.get(ENV_PREFIX + name) or None

        d = cls()
        return cls(
            poll_interval=float(get("POLL_INTERVAL") or d.poll_interval),
            max_backoff=float(get("MAX_BACKOFF") or d.max_backoff),
            delete_backoff=float(get("DELETE_BACKOFF") or d.delete_backoff),
            slurm_timeout=float(get("SLURM_TIMEOUT") or d.slurm_timeout),
            slurm_conf=get("SLURM_CONF"),
            mpirun_allow_run_as_root=_flag(get("MPIRUN_ALLOW_RUN_AS_ROOT")),
            job_environment=parse_env_pairs(get("JOB_ENV") or ""),
            default_working_directory=get("DEFAULT_WORKDIR"),
        )
