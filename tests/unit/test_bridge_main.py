"""`python -m slurm_bridge`: flags, their environment twins, the handler registration."""

from __future__ import annotations

import subprocess
import sys

import kopf
import pytest

from slurm_bridge.__main__ import parse_args
from slurm_bridge.main import register
from slurm_bridge.options import Options, parse_env_pairs


def test_help_works_and_names_the_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "slurm_bridge", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for flag in ("--namespace", "--poll-interval", "--slurm-conf", "--mpirun-allow-run-as-root"):
        assert flag in out


def test_defaults_watch_all_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_BRIDGE_NAMESPACES", raising=False)
    args, options = parse_args([])
    assert args.namespace == [] and options == Options()
    assert options.poll_interval == 5.0 and not options.mpirun_allow_run_as_root


def test_flags_and_env_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_BRIDGE_NAMESPACES", "a, b")
    monkeypatch.setenv("SLURM_BRIDGE_POLL_INTERVAL", "2")
    monkeypatch.setenv("SLURM_BRIDGE_JOB_ENV", "A=1,B=x=y")
    args, options = parse_args(["--job-env", "B=2", "--mpirun-allow-run-as-root"])
    assert args.namespace == ["a", "b"]
    assert options.poll_interval == 2.0
    assert options.job_environment == {"A": "1", "B": "2"}
    assert options.script.mpirun_allow_run_as_root
    args, _ = parse_args(["-n", "only"])
    assert args.namespace == ["only"]


def test_env_pairs() -> None:
    assert parse_env_pairs(["A=1", "B=", "C=x=y"]) == {"A": "1", "B": "", "C": "x=y"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_env_pairs(["nope"])


def test_no_environment_variable_turns_a_crash_hook_on() -> None:
    """Fault injection is a `main(hooks=...)` argument, never a setting of the process."""
    env = {"SLURM_BRIDGE_TEST_CRASH_AFTER_SUBMIT": "1"}
    assert Options.from_env(env) == Options.from_env({})
    assert not hasattr(Options(), "crash_after_submit")


def test_register_puts_every_handler_on_a_registry() -> None:
    registry = kopf.OperatorRegistry()
    register(registry, Options(poll_interval=3))
    resource = kopf.Resource("vectorpipe.io", "v1alpha1", "slurmjobs", namespaced=True)
    ids = {h.id for h in registry._changing.get_all_handlers()}
    assert {"submit", "resume", "cancel"} <= ids
    (timer,) = registry._spawning.get_all_handlers()
    assert (timer.id, timer.interval) == ("poll", 3)
    assert registry._changing.has_handlers(resource=resource)
