"""`python -m vectorpipe_workloads` is the `vectorpipe` command (the RayJob entrypoint uses it)."""

import sys

from vectorpipe_workloads.cli import main

sys.exit(main())
