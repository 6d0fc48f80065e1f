"""`python -m slurm_bridge`: run the SlurmJob controller.

Watches every namespace by default, or only those given with `--namespace`
(repeatable, Kopf glob patterns allowed; also `SLURM_BRIDGE_NAMESPACES`,
comma-separated, for a Helm value). Serves Kopf's liveness probe and the
Prometheus metrics on their own ports, logs as plain text or one JSON object
per line, and runs standalone (one replica, no Kopf peering) unless `--peering
NAME` is given (with `--priority`, random by default). Every other flag has an
environment twin named `SLURM_BRIDGE_<FLAG>` (see `slurm_bridge.options`). A SlurmJob without
`spec.slurm.endpoint` runs through sbatch on this host (`--slurm-conf`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import kopf

from slurm_bridge.context import HOOKS_KEY, Hooks
from slurm_bridge.options import Options, parse_env_pairs
from vectorpipe_kopf import shell

NAMESPACES_ENV = "SLURM_BRIDGE_NAMESPACES"


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Options]:
    d = Options.from_env()
    p = argparse.ArgumentParser(
        prog="python -m slurm_bridge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shell.add_scope_args(p)
    p.add_argument(
        "--poll-interval",
        type=float,
        default=d.poll_interval,
        help="seconds between polls of an unfinished job",
    )
    p.add_argument(
        "--max-backoff",
        type=float,
        default=d.max_backoff,
        help="cap of the retry delay while Slurm is unreachable",
    )
    p.add_argument(
        "--delete-backoff",
        type=float,
        default=d.delete_backoff,
        help="cap of the retry delay of a blocked deletion",
    )
    p.add_argument(
        "--slurm-timeout",
        type=float,
        default=d.slurm_timeout,
        help="timeout of one slurmrestd request",
    )
    p.add_argument(
        "--slurm-conf",
        default=d.slurm_conf,
        help="slurm.conf for the sbatch backend (SlurmJobs without an endpoint)",
    )
    p.add_argument(
        "--mpirun-allow-run-as-root",
        action="store_true",
        default=d.mpirun_allow_run_as_root,
        help="add --allow-run-as-root to generated mpirun lines (test rigs whose jobs run as root)",
    )
    p.add_argument(
        "--job-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment every job starts with; the spec's wins (repeatable)",
    )
    p.add_argument(
        "--default-workdir",
        default=d.default_working_directory,
        help="working directory of jobs whose spec sets none",
    )
    shell.add_logging_args(p)
    args = p.parse_args(argv)
    shell.resolve_namespaces(args, NAMESPACES_ENV)
    try:
        job_env = {**d.job_environment, **parse_env_pairs(args.job_env)}
    except ValueError as e:
        p.error(f"--job-env: {e}")
    options = Options(
        poll_interval=args.poll_interval,
        max_backoff=args.max_backoff,
        delete_backoff=args.delete_backoff,
        slurm_timeout=args.slurm_timeout,
        slurm_conf=args.slurm_conf,
        mpirun_allow_run_as_root=args.mpirun_allow_run_as_root,
        job_environment=job_env,
        default_working_directory=args.default_workdir,
    )
    return args, options


def main(argv: Sequence[str] | None = None, hooks: Hooks | None = None) -> int:
    """Run until stopped; `hooks` are fault-injection seams for tests (none in production)."""
    args, options = parse_args(argv)
    from slurm_bridge.main import register

    registry = kopf.OperatorRegistry()
    register(registry, options)
    memo = kopf.Memo(options=options)
    memo[HOOKS_KEY] = hooks or Hooks()
    shell.run(registry, args, memo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
