"""`python -m vectorpipe_operator`: run the VectorPipeline operator.

Watches every namespace by default, or only those given with `--namespace`
(repeatable, Kopf glob patterns allowed; also `VECTORPIPE_NAMESPACES`,
comma-separated, for a Helm value). Serves Kopf's liveness probe and the
Prometheus metrics on their own ports, logs as plain text or one JSON object
per line (`--log-format json`), and runs standalone (one replica, no Kopf
peering) unless `--peering NAME` is given (with `--priority`, random by
default). `kopf run -m vectorpipe_operator.main`
runs the same handlers with Kopf's own command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import kopf

from vectorpipe_kopf import shell
from vectorpipe_operator.reconcile import Hooks

NAMESPACES_ENV = "VECTORPIPE_NAMESPACES"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vectorpipe_operator", description=__doc__)
    shell.add_scope_args(p)
    shell.add_logging_args(p)
    args = p.parse_args(argv)
    shell.resolve_namespaces(args, NAMESPACES_ENV)
    return args


def main(argv: Sequence[str] | None = None, hooks: Hooks | None = None) -> int:
    """Run until stopped; `hooks` are fault-injection seams for tests (none in production)."""
    args = parse_args(argv)
    import vectorpipe_operator.main  # noqa: F401  (registers the handlers)

    shell.run(kopf.get_default_registry(), args, kopf.Memo(hooks=hooks or Hooks()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
