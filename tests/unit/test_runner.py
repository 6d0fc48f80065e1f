"""The local runner's stage-2 command line (`vectorpipe run` without Kubernetes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from vectorpipe_api.pipeline import AppSpec, VectorPipelineSpec
from vectorpipe_workloads import runner
from vectorpipe_workloads.kmeans import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def spec(**app: object) -> VectorPipelineSpec:
    body = yaml.safe_load((EXAMPLES / "pipeline.yaml").read_text())["spec"]
    body.setdefault("hpc", {}).setdefault("app", {}).update(app)
    return VectorPipelineSpec.model_validate(body)


@pytest.fixture(autouse=True)
def fake_mpirun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/opt/bin/{name}")


def test_mpirun_command_carries_the_app_settings_the_kmeans_cli_parses() -> None:
    s = spec(clusters=7, maxIterations=30, seed=5, nInit=6)
    cmd = runner.mpirun_command(s, "/runs/m/_manifest.json", 3)
    assert cmd[:3] == ["/opt/bin/mpirun", "-n", "3"]
    module = cmd.index("vectorpipe_workloads.kmeans")
    args = cli.build_parser().parse_args(cmd[module + 1 :])
    assert (args.clusters, args.max_iterations, args.seed, args.n_init) == (7, 30, 5, 6)
    assert args.manifest == "/runs/m/_manifest.json"


def test_mpirun_command_uses_the_spec_default_starts() -> None:
    cmd = runner.mpirun_command(spec(), "/runs/m/_manifest.json", 2)
    assert cmd[cmd.index("--n-init") + 1] == str(AppSpec.model_fields["n_init"].default)
