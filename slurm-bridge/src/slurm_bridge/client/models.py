"""Version-neutral job request and job information, the currency of every backend.

`JobRequest` is what a caller asks for (an sbatch-like description: script,
sizes, partition, time limit in minutes, environment, paths); each REST adapter
turns it into its version's submit body and the CLI backend into sbatch options.
`JobInfo` is what comes back, whatever the wire format was: the base state as a
plain upper-case string (``COMPLETED``, ``FAILED``, ``CANCELLED``, ``TIMEOUT``,
...), the state flags separately (``COMPLETING``, ``REQUEUED``, ...), the exit
code of the batch script as a small int and the terminating signal, times as
timezone-aware datetimes, and the node list. `is_terminal` is the one question a
controller asks: the job ended and Slurm is done cleaning up after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slurm_bridge.errors import SlurmRejected

# Base states Slurm reports (JOB_STATE_BASE in slurm.h); everything else in a
# job_state list is a flag.
BASE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "SUSPENDED",
        "COMPLETED",
        "CANCELLED",
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
    }
)
TERMINAL_STATES = BASE_STATES - {"PENDING", "RUNNING", "SUSPENDED"}
# While one of these flags is set the job still holds resources or is about to
# run again, whatever its base state says.
UNSETTLED_FLAGS = frozenset(
    {
        "COMPLETING",
        "CONFIGURING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "STAGE_OUT",
    }
)

# Slurm refuses a batch job without an environment (REST) and a job without PATH
# cannot find anything; callers' variables are layered over this.
DEFAULT_ENVIRONMENT: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}


@dataclass(frozen=True)
class JobRequest:
    """One batch job, described the way sbatch options would describe it."""

    script: str
    name: str | None = None
    comment: str | None = None
    nodes: int | None = None
    ntasks: int | None = None
    ntasks_per_node: int | None = None
    cpus_per_task: int | None = None
    partition: str | None = None
    time_limit: int | None = None  # minutes
    account: str | None = None
    qos: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    current_working_directory: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None
    # None: the cluster's default (JobRequeue). The bridge sends False: Slurm
    # requeueing a job after a node failure would rerun it behind the SlurmJob's
    # back (and hide the failure); the SlurmJob's backoffLimit decides instead.
    requeue: bool | None = None

    def full_environment(self) -> dict[str, str]:
        return {**DEFAULT_ENVIRONMENT, **self.environment}


@dataclass(frozen=True)
class JobInfo:
    """A job as Slurm reports it, normalised across REST versions and the CLI."""

    job_id: int
    name: str = ""
    comment: str = ""
    state: str = "UNKNOWN"
    flags: tuple[str, ...] = ()
    state_reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    nodes: str = ""
    partition: str = ""
    user_name: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES and not (UNSETTLED_FLAGS & set(self.flags))

    @property
    def succeeded(self) -> bool:
        return self.is_terminal and self.state == "COMPLETED" and self.exit_code == 0


@dataclass(frozen=True)
class ControllerPing:
    hostname: str
    responding: bool
    mode: str = ""


def split_state(values: list[str] | tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """Split a job_state list (v0.0.40+) into the base state and the flags."""
    names = [str(v).upper() for v in values]
    bases = [n for n in names if n in BASE_STATES]
    flags = tuple(n for n in names if n not in BASE_STATES)
    if bases:
        return bases[0], flags
    # Only flags (should not happen): keep the first so the caller sees something.
    return (flags[0] if flags else "UNKNOWN"), flags


def state_from_string(value: str) -> tuple[str, tuple[str, ...]]:
    """A single job_state string (v0.0.38/39, squeue): a base state or one flag.

    Slurm's job_state_string() prints a flag such as COMPLETING or CONFIGURING
    instead of the base state while that flag is set; the base is then unknown,
    so the flag becomes the state (not terminal) and is also listed as a flag.
    """
    name = value.strip().upper()
    # sacct prints "CANCELLED by 0"; squeue prints plain names.
    name = name.split(" ", 1)[0] if name else "UNKNOWN"
    if name in BASE_STATES:
        return name, ()
    return name, (name,)


def from_epoch(value: int | None) -> dt.datetime | None:
    """Slurm uses 0 (and NO_VAL) for "not yet"; those become None."""
    if value is None or value <= 0 or value >= 0xFFFFFFFE:
        return None
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


def decode_wait_status(status: int | None) -> tuple[int | None, int | None]:
    """(exit code, signal) from a raw waitpid() status as v0.0.38/39 report it."""
    if status is None or status < 0 or status >= 0xFFFFFFFE:
        return None, None
    signal = status & 0x7F
    if signal:
        return None, signal
    return (status >> 8) & 0xFF, None


# sbatch's own words (src/sbatch/sbatch.c); slurmrestd checks nothing, up to 25.05.
NO_SHEBANG = (
    "This does not look like a batch script.  The first line must start with #! "
    "followed by the path to an interpreter. For instance: #!/bin/sh"
)


def check_script(script: str) -> None:
    """Refuse a script without ``#!`` as sbatch does, for every backend alike.

    slurmrestd queues such a script and the job then fails on the node with
    "execve(): Exec format error" (seen on 22.05); refusing up front gives the
    caller sbatch's clear message instead of a FAILED job.
    """
    if not script.startswith("#!"):
        raise SlurmRejected(NO_SHEBANG)
