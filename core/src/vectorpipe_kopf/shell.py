"""What every Kopf controller of VectorPipe runs the same way: command line, settings, events.

Both the slurm-bridge and the VectorPipeline operator are Kopf processes with
the same outer shell: a namespace scope (flags or a comma-separated
environment variable for a Helm value), Kopf's liveness endpoint, a
Prometheus endpoint, a log format, standalone or peered (`--peering NAME`,
with a `--priority` that defaults to a random one so replicas of one
Deployment never tie: Kopf pauses every peer of equal priority); and
annotation-based persistence under their own prefix. This module holds that
shell once. Nothing here knows either resource.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
from collections.abc import Mapping
from typing import Any, cast

import kopf

log = logging.getLogger(__name__)

LOG_FORMATS = {
    "plain": kopf.LogFormat.PLAIN,
    "full": kopf.LogFormat.FULL,
    "json": kopf.LogFormat.JSON,
}


def add_scope_args(p: argparse.ArgumentParser) -> None:
    """Namespace scope, liveness and metrics endpoints (the first flags of --help)."""
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all (default)")
    p.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="'' to disable")
    p.add_argument("--metrics-port", type=int, default=9090, help="0 to disable")
    p.add_argument("--metrics-addr", default="0.0.0.0")


def add_logging_args(p: argparse.ArgumentParser) -> None:
    """Log format, peering and verbosity (the last flags of --help)."""
    p.add_argument("--log-format", choices=sorted(LOG_FORMATS), default="full")
    p.add_argument("--peering", default=None, help="Kopf peering name (default: standalone)")
    p.add_argument(
        "--priority",
        type=int,
        default=None,
        help="Kopf peering priority; the highest live one runs, the others wait "
        "(default: random, so replicas never tie)",
    )
    level = p.add_mutually_exclusive_group()
    level.add_argument("-v", "--verbose", action="store_true")
    level.add_argument("-q", "--quiet", action="store_true")
    level.add_argument("--debug", action="store_true")


def resolve_namespaces(args: argparse.Namespace, env_name: str) -> None:
    """Without -n/-A on the command line, take the namespaces from `env_name` (a,b,c)."""
    if not args.namespace and not args.all_namespaces:
        env = os.environ.get(env_name, "")
        args.namespace = [ns.strip() for ns in env.split(",") if ns.strip()]


def peering_priority(args: argparse.Namespace) -> int | None:
    """The peering priority: as given, else random when peered (None: standalone)."""
    if args.peering is None:
        return None
    if args.priority is not None:
        return int(args.priority)
    return random.SystemRandom().randint(1, 1_000_000)


def run(registry: kopf.OperatorRegistry, args: argparse.Namespace, memo: kopf.Memo) -> None:
    """Configure Kopf's logging and run it until it is told to stop."""
    kopf.configure(
        debug=args.debug,
        verbose=args.verbose,
        quiet=args.quiet,
        log_format=LOG_FORMATS[args.log_format],
    )
    memo.update(metrics_port=args.metrics_port, metrics_addr=args.metrics_addr)
    kopf.run(
        registry=registry,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=peering_priority(args),
        memo=memo,
    )


def configure_settings(
    settings: kopf.OperatorSettings,
    *,
    prefix: str,
    diffbase_key: str,
    touch_key: str,
    finalizer: str,
    posting_level: int,
    max_workers: int,
) -> None:
    """Kopf settings both controllers share; the arguments are where they differ.

    State goes into annotations under `prefix`, so typed statuses carry no Kopf
    bookkeeping and two controllers watching one kind never collide. Watch
    streams get server and client timeouts so a silent stream is reconnected,
    and failed API calls a bounded list of back-offs, after which Kopf gives up
    on that call instead of looping.
    """
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=prefix, touch_key=touch_key
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key=diffbase_key
    )
    settings.persistence.finalizer = finalizer
    settings.posting.level = posting_level
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.error_backoffs = [1, 2, 4, 8, 16, 30]
    settings.execution.max_workers = max_workers


def metrics_endpoint(memo: kopf.Memo, port_env: str, addr_env: str) -> tuple[int, str]:
    """The metrics port (0: off) and address: from the memo under `python -m`, else the env
    (under `kopf run`, which fills no memo)."""
    port = int(memo.get("metrics_port") or os.environ.get(port_env) or 0)
    addr = str(memo.get("metrics_addr") or os.environ.get(addr_env) or "0.0.0.0")
    return port, addr


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Queue an Event on `body` through Kopf's poster (retried and rate-limited by Kopf)."""
    try:
        kopf.event(cast(kopf.Body, dict(body)), type=type_, reason=reason, message=message[:1024])
    except LookupError:
        # Outside a running operator (scripts, unit tests) there is no poster.
        log.info("event %s %s: %s", type_, reason, message)


def quiet_http_loggers() -> None:
    """Keep HTTP clients' debug logs out even under --verbose/--debug.

    The kubernetes client logs every response body at DEBUG, which for a Secret
    read is a token; httpx logs request headers (X-SLURM-USER-TOKEN).
    """
    for name in ("kubernetes", "urllib3", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
