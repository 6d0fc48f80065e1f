"""`python -m vectorpipe_workloads.report OUTPUT [--labels ...]`: (re)write a run's report.

Parses the command line, loads the labels if given, calls `write_report` and
prints the page's URI (and the ARI and NMI when labels were scored).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from vectorpipe_workloads.report.text import _num
from vectorpipe_workloads.report.writer import write_report
from vectorpipe_workloads.storage import Store


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vectorpipe_workloads.report",
        description="Write <output>/report/index.html for a finished VectorPipe run.",
    )
    parser.add_argument("output", help="the run's output URI (path or s3://)")
    parser.add_argument("--labels", help="labels.tsv[.gz]: read_id<TAB>source, to score clusters")
    parser.add_argument("--sample-rows", type=int, default=5000, help="vectors in the projection")
    parser.add_argument("--title", default="", help="page title")
    args = parser.parse_args(argv)
    store = Store()
    labels = None
    if args.labels:
        from vectorpipe_workloads.sampledata import load_labels

        labels = load_labels(args.labels, store)
    result = write_report(
        args.output, store, labels=labels, sample_rows=args.sample_rows, title=args.title
    )
    print(result.uri)
    if result.ari is not None:
        print(
            f"ARI {result.ari:.3f}  NMI {_num(result.nmi, '.3f')}  ({result.labelled_rows:,} rows)"
        )
    return 0
