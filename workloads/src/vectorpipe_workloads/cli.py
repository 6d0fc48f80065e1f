"""The `vectorpipe` command: run a pipeline locally, run stage 1 alone, validate, report.

`vectorpipe run pipeline.yaml` is the embedded default (local Ray + mpirun).
`vectorpipe etl --pipeline FILE` is stage 1 alone; it is the entrypoint of the
RayJob the operator creates, so it attaches to the Ray cluster at
`RAY_ADDRESS` when there is one. Exit codes: 0 success, 2 bad pipeline file,
3 bad input data, 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

EXIT_BAD_SPEC = 2
EXIT_BAD_INPUT = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vectorpipe", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run both stages and the report on this machine")
    run.add_argument("pipeline", help="VectorPipeline YAML file")
    run.add_argument("--ranks", type=int, help="MPI ranks (default: nodes × ntasksPerNode)")
    run.add_argument("--no-report", action="store_true", help="skip the HTML report")
    etl = sub.add_parser("etl", help="stage 1 only: reads → embedding shards + manifest")
    etl.add_argument("--pipeline", required=True, help="VectorPipeline YAML file")
    val = sub.add_parser("validate", help="check a pipeline file and print the resolved spec")
    val.add_argument("pipeline")
    rep = sub.add_parser("report", help="(re)write the HTML report of a finished run")
    rep.add_argument("output", help="output URI of the run")
    rep.add_argument("--labels", help="labels.tsv(.gz): read_id <TAB> source")
    return p


def _fail(message: str, code: int) -> int:
    print(f"vectorpipe: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from vectorpipe_workloads.etl import EmptyInputError
    from vectorpipe_workloads.etl.readers import InputFormatError
    from vectorpipe_workloads.pipeline_file import PipelineFileError, load_pipeline

    try:
        if args.command == "validate":
            doc = load_pipeline(args.pipeline)
            print(doc.spec.model_dump_json(by_alias=True, indent=2))
            return 0
        if args.command == "report":
            from vectorpipe_workloads.commands import report_command

            return report_command(args.output, args.labels)
        if args.command == "etl":
            from vectorpipe_workloads.commands import etl_command

            return etl_command(load_pipeline(args.pipeline))
        from vectorpipe_workloads.commands import run_command

        return run_command(
            load_pipeline(args.pipeline), ranks=args.ranks, report=not args.no_report
        )
    except PipelineFileError as e:
        return _fail(str(e), EXIT_BAD_SPEC)
    except InputFormatError as e:
        return _fail(f"bad input: {e}", EXIT_BAD_INPUT)
    except EmptyInputError as e:
        return _fail(f"bad input: {e}", EXIT_BAD_INPUT)
    except FileNotFoundError as e:
        return _fail(str(e), EXIT_BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
