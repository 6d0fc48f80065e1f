"""`python -m vectorpipe_workloads.report`: write a finished run's report (see `cli` for the options).

Kept to the entry point alone, so importing the package runs nothing.
"""

from __future__ import annotations

if __name__ == "__main__":
    import sys

    from vectorpipe_workloads.report.cli import main

    sys.exit(main())
