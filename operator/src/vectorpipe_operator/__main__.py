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
import sys
from collections.abc import Sequence

import kopf

from slurm_bridge import runtime

NAMESPACES_ENV = "VECTORPIPE_NAMESPACES"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vectorpipe_operator", description=__doc__)
    runtime.add_scope_args(p)
    runtime.add_logging_args(p)
    args = p.parse_args(argv)
    runtime.resolve_namespaces(args, NAMESPACES_ENV)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import vectorpipe_operator.main  # noqa: F401  (registers the handlers)

    runtime.run(kopf.get_default_registry(), args, kopf.Memo())
    return 0


if __name__ == "__main__":
    sys.exit(main())
