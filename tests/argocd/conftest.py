"""Fixtures for the Argo CD tier: the gopher-lua harness that runs health scripts
the way Argo CD does (hack/lua, built once into the cache outside the repo)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "charts" / "argocd"
HEALTH_DIR = ARGOCD / "health"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

RunHealth = Callable[..., Any]


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


CRD_DIR = REPO / "charts" / "vectorpipe" / "crds"


def _no_unknown_fields(schema: Any) -> Any:
    """Make a CRD schema refuse unknown fields (the API server would prune them
    silently, which would hide a typo in a fixture or an example)."""
    if isinstance(schema, dict):
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            _no_unknown_fields(value)
    elif isinstance(schema, list):
        for value in schema:
            _no_unknown_fields(value)
    return schema


def crd_validator(kind: str) -> Any:
    """A jsonschema validator for the v1alpha1 schema of our CRD `kind`, from
    charts/vectorpipe/crds/. Fails (never skips) when the chart has no such CRD:
    a renamed kind or a moved chart must not turn the fixture checks green."""
    import jsonschema
    import yaml

    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        if crd.get("kind") != "CustomResourceDefinition" or crd["spec"]["names"]["kind"] != kind:
            continue
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
        schema = _no_unknown_fields(version["schema"]["openAPIV3Schema"])
        return jsonschema.Draft7Validator(schema)
    pytest.fail(f"no CRD for {kind} under {CRD_DIR.relative_to(REPO)}", pytrace=False)
