"""Controllers that die at a chosen instant: the restart tests' fault injection.

    python -m tests.support.crashing operator RayJob -- <operator flags>
    python -m tests.support.crashing bridge -- <bridge flags>

runs the real `python -m vectorpipe_operator` (or `slurm_bridge`) main with a
hook that ends the process with `CRASH_EXIT_CODE` right after it created a
child of that kind (or right after a successful Slurm submit), before the
status records it: what a node loss or an OOM kill at the worst moment does.
The production modules only offer the `hooks` argument; the `os._exit` lives
here, in the tests.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

CRASH_EXIT_CODE = 86


def _die(*_: object) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(CRASH_EXIT_CODE)


def main(argv: Sequence[str]) -> int:
    which, rest = argv[0], list(argv[1:])
    if which == "operator":
        from vectorpipe_operator.__main__ import main as operator_main
        from vectorpipe_operator.reconcile import Hooks as OperatorHooks

        kind, flags = rest[0], rest[2:] if rest[1:2] == ["--"] else rest[1:]

        def after_create(created: str) -> None:
            if created == kind:
                _die()

        return operator_main(flags, hooks=OperatorHooks(after_create=after_create))
    if which == "bridge":
        from slurm_bridge.__main__ import main as bridge_main
        from slurm_bridge.context import Hooks as BridgeHooks

        flags = rest[1:] if rest[:1] == ["--"] else rest
        return bridge_main(flags, hooks=BridgeHooks(after_submit=_die))
    raise SystemExit("usage: python -m tests.support.crashing (operator KIND | bridge) -- FLAGS")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
