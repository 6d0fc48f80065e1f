"""Fixtures for the ParallelCluster side: the validation venv and post-install renders.

`pcluster_venv` builds (once, outside the repo, reused across runs) the venv that
`slurm-bridge/parallelcluster/validate.sh` uses: aws-parallelcluster and the AWS
CLI v1 from a hash-locked requirements file. `render` runs `post-install.sh
--dest-root`, which writes every file the head node would get into a directory
and touches nothing else.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.parallelcluster.support import (
    PCLUSTER_SLURM_CONF,
    POST_INSTALL,
    VALIDATE,
    Render,
    RenderFn,
)


@pytest.fixture(scope="session")
def pcluster_venv() -> Path:
    """The validation venv; built on first use (~10-60 s with uv), then reused."""
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", str(VALIDATE), "--setup-only"], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"validate.sh --setup-only failed:\n{proc.stderr}"
    venv = Path(proc.stdout.strip().splitlines()[-1])
    print(f"pcluster venv {venv} ready in {time.monotonic() - start:.1f}s")
    return venv


@pytest.fixture
def render(tmp_path: Path) -> RenderFn:
    """Run post-install.sh --dest-root into one directory (call again to re-run it there)."""
    root = tmp_path / "root"
    etc = root / "opt" / "slurm" / "etc"
    (etc / "pcluster").mkdir(parents=True)
    (etc / "slurm.conf").write_text(PCLUSTER_SLURM_CONF)
    (etc / "pcluster" / "custom_slurm_settings_include_file_slurm.conf").write_text("")

    def run(*args: str, check: bool = True, env: dict[str, str] | None = None) -> Render:
        argv = ["bash", str(POST_INSTALL), "--dest-root", str(root), *args]
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
        )
        if check:
            assert proc.returncode == 0, f"{argv} failed:\n{proc.stderr}"
        return Render(root, proc)

    return run
