"""Fixtures for the Argo CD tier: the gopher-lua harness that runs health scripts
the way Argo CD does (hack/lua, built once into the cache outside the repo).
The paths and helpers the tier's modules share are in tests/support/argocd.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.argocd import REPO, RunHealth


@pytest.fixture(scope="session")
def lua_health() -> Path:
    """Path of the lua-health binary; hack/lua/build.sh is a no-op when it is fresh."""
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "lua" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/lua/build.sh failed:\n{proc.stdout}\n{proc.stderr}")
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def run_health(lua_health: Path) -> RunHealth:
    """run_health(script, obj, *flags) -> the decoded JSON the harness prints.

    Raises subprocess.CalledProcessError (with stderr) when the script errors."""

    def run(script: Path | str, obj: Any, *flags: str) -> Any:
        proc = subprocess.run(
            [str(lua_health), *flags, str(script), "-"],
            input=json.dumps(obj),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, proc.args, output=proc.stdout, stderr=proc.stderr
            )
        return json.loads(proc.stdout)

    return run
