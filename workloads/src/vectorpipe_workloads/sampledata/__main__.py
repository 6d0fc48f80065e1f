"""`python -m vectorpipe_workloads.sampledata`: write the bundled demo data (see `dataset.main`)."""

from __future__ import annotations

if __name__ == "__main__":
    from vectorpipe_workloads.sampledata.dataset import main

    raise SystemExit(main())
