"""`python -m vectorpipe_operator`: run the VectorPipeline operator.

Watches every namespace by default, or only those given with `--namespace`
(repeatable, Kopf glob patterns allowed; also `VECTORPIPE_NAMESPACES`,
comma-separated, for a Helm value). Serves Kopf's liveness probe and the
Prometheus metrics on their own ports, logs as plain text or one JSON object
per line (`--log-format json`), and runs standalone (one replica, no Kopf
peering) unless `--peering NAME` is given. `kopf run -m vectorpipe_operator.main`
runs the same handlers with Kopf's own command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import kopf

NAMESPACES_ENV = "VECTORPIPE_NAMESPACES"
LOG_FORMATS = {
    "plain": kopf.LogFormat.PLAIN,
    "full": kopf.LogFormat.FULL,
    "json": kopf.LogFormat.JSON,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vectorpipe_operator", description=__doc__)
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all (default)")
    p.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="'' to disable")
    p.add_argument("--metrics-port", type=int, default=9090, help="0 to disable")
    p.add_argument("--metrics-addr", default="0.0.0.0")
    p.add_argument("--log-format", choices=sorted(LOG_FORMATS), default="full")
    p.add_argument("--peering", default=None, help="Kopf peering name (default: standalone)")
    level = p.add_mutually_exclusive_group()
    level.add_argument("-v", "--verbose", action="store_true")
    level.add_argument("-q", "--quiet", action="store_true")
    level.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    if not args.namespace and not args.all_namespaces:
        env = os.environ.get(NAMESPACES_ENV, "")
        args.namespace = [ns.strip() for ns in env.split(",") if ns.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import vectorpipe_operator.main  # noqa: F401  (registers the handlers)

    kopf.configure(
        debug=args.debug,
        verbose=args.verbose,
        quiet=args.quiet,
        log_format=LOG_FORMATS[args.log_format],
    )
    kopf.run(
        registry=kopf.get_default_registry(),
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
        standalone=args.peering is None,
        peering_name=args.peering,
        memo=kopf.Memo(metrics_port=args.metrics_port, metrics_addr=args.metrics_addr),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
