"""`python -m vectorpipe_workloads.kmeans`: run stage 2 (see `cli` for the options).

Kept to the entry point alone so that importing the package never starts MPI.
"""

from __future__ import annotations

if __name__ == "__main__":
    from vectorpipe_workloads.kmeans.cli import main

    raise SystemExit(main())
