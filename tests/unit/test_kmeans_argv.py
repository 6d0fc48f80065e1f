"""Stage 2's one command-line builder, `manifest.kmeans_argv`, read back by stage 2's own parser."""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vectorpipe_api.pipeline import VectorPipelineSpec
from vectorpipe_workloads import runner
from vectorpipe_workloads.kmeans.cli import build_parser
from vectorpipe_workloads.manifest import KMEANS_MODULE, clustering_uri, kmeans_argv

MANIFEST = "s3://bucket/runs/x/_manifest.json"


def spec(
    app: dict[str, Any] | None = None,
    s3: dict[str, Any] | None = None,
    output: str = "s3://bucket/runs/x/",
) -> VectorPipelineSpec:
    return VectorPipelineSpec.model_validate(
        {
            "input": {"uri": "s3://bucket/reads/"},
            "output": {"uri": output},
            "s3": s3 or {},
            "hpc": {"app": app or {}},
        }
    )


SPECS = {
    "defaults": spec(),
    "csv": spec({"csv": True}),
    "s3 endpoint and region": spec(
        s3={"endpointUrl": "http://127.0.0.1:9000", "region": "eu-west-3"}
    ),
    "s3 region only": spec(s3={"region": "us-east-1"}),
    "odd tolerance": spec({"tolerance": 1e-7}),
    "every app setting": spec(
        {
            "clusters": 7,
            "maxIterations": 30,
            "tolerance": 0.1 + 0.2,
            "seed": 2**31 - 1,
            "nInit": 6,
            "csv": True,
        },
        output="/fsx/runs/m/",
    ),
}


def assert_parses_to(s: VectorPipelineSpec, argv: list[str], manifest: str) -> None:
    assert argv[:2] == ["-m", KMEANS_MODULE]
    args = build_parser().parse_args(argv[2:])
    app = s.hpc.app
    assert args.manifest == manifest
    assert args.output == clustering_uri(s.output.uri)
    assert args.clusters == app.clusters
    assert args.max_iterations == app.max_iterations
    assert args.tolerance == app.tolerance  # exact: repr round-trips every float
    assert args.seed == app.seed
    assert args.n_init == app.n_init
    assert args.csv is app.csv
    assert args.s3_endpoint_url == s.s3.endpoint_url
    assert args.s3_region == s.s3.region


@pytest.mark.parametrize("s", SPECS.values(), ids=list(SPECS))
def test_every_setting_reaches_stage_two(s: VectorPipelineSpec) -> None:
    assert_parses_to(s, kmeans_argv(s, MANIFEST), MANIFEST)


@given(st.floats(min_value=0.0, max_value=1.0))
def test_any_tolerance_survives_the_command_line(tolerance: float) -> None:
    s = spec({"tolerance": tolerance})
    args = build_parser().parse_args(kmeans_argv(s, MANIFEST)[2:])
    assert args.tolerance == tolerance


def test_s3_settings_are_flags_and_absent_when_unset() -> None:
    argv = kmeans_argv(SPECS["s3 endpoint and region"], MANIFEST)
    assert argv[argv.index("--s3-endpoint-url") + 1] == "http://127.0.0.1:9000"
    assert argv[argv.index("--s3-region") + 1] == "eu-west-3"
    plain = kmeans_argv(SPECS["defaults"], MANIFEST)
    assert "--s3-endpoint-url" not in plain
    assert "--s3-region" not in plain
    assert "--csv" not in plain


def test_the_local_runner_puts_mpirun_and_this_python_in_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/opt/bin/{name}")
    s = SPECS["every app setting"]
    cmd = runner.mpirun_command(s, MANIFEST, 3)
    argv = kmeans_argv(s, MANIFEST)
    assert cmd[:3] == ["/opt/bin/mpirun", "-n", "3"]
    assert cmd[-len(argv) - 1 :] == [sys.executable, *argv]


def test_the_manifest_module_stays_light() -> None:
    # The operator imports it: no spec models, numpy or Arrow may come along.
    code = (
        "import sys, vectorpipe_workloads.manifest; "
        "heavy = {'vectorpipe_api.pipeline', 'pydantic', 'numpy', 'pyarrow'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
