"""Paths and helpers for the tests of the EKS deployment files in charts/deploy/eks/.

The files there are templates with `${NAME}` placeholders that a user renders
with `envsubst` restricted to the names in `vectorpipe.env.example`; `render`
does the same substitution in Python (only listed names, so any other `$` is
left alone), and `eksctl_schema` fetches the ClusterConfig JSON schema that
eksctl embeds, from the pinned eksctl Go module through `go mod download`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EKS = ROOT / "charts" / "deploy" / "eks"
ENV_EXAMPLE = EKS / "vectorpipe.env.example"
RENDER = EKS / "render.sh"
CLUSTER = EKS / "cluster.yaml"
IAM = EKS / "iam"
FSX = EKS / "fsx"
CHART = ROOT / "charts" / "vectorpipe"
DOC = ROOT / "docs" / "eks.md"

# The eksctl release whose schema the ClusterConfig is checked against, and the
# go.sum hash of its module zip, so a changed download cannot pass unnoticed.
EKSCTL_MODULE = "github.com/weaveworks/eksctl"
EKSCTL_VERSION = "v0.215.0"
EKSCTL_SUM = "h1:oCPoubT3UsW4Y2J43Y4dNRvXHEIsgg03Y3e6wv6bKG4="
EKSCTL_SCHEMA = "pkg/apis/eksctl.io/v1alpha5/assets/schema.json"

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
ENV_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def example_env() -> dict[str, str]:
    """The placeholders and their example values, in file order."""
    env: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = ENV_LINE.match(line)
        if m:
            env[m[1]] = m[2]
    return env


def templates() -> list[Path]:
    """Every file under charts/deploy/eks/ that may carry placeholders."""
    return sorted(
        p for p in EKS.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml", ".json"}
    )


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(text: str, env: dict[str, str]) -> str:
    """envsubst limited to the names in env: others stay as they are."""
    return PLACEHOLDER.sub(lambda m: env.get(m[1], m[0]), text)


def render_yaml_docs(path: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render(path.read_text(), env)) if d is not None]


def render_json(path: Path, env: dict[str, str]) -> Any:
    return json.loads(render(path.read_text(), env))


def eksctl_schema() -> dict[str, Any]:
    """eksctl's ClusterConfig JSON schema from the pinned module (Go module cache).

    `go mod download` is a no-op when the module is cached; the first time it
    fetches a 14 MB zip through the configured Go proxy and checks it against
    the checksum database. Run from a temp dir so no go.mod is in scope.
    """
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not os.path.exists(go):
        raise RuntimeError(
            "the Go toolchain is needed to fetch eksctl's schema (hack/k8s uses it too)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [go, "mod", "download", "-json", f"{EKSCTL_MODULE}@{EKSCTL_VERSION}"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
            check=False,
        )
    info = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if proc.returncode != 0 or "Dir" not in info:
        raise RuntimeError(
            f"go mod download {EKSCTL_MODULE}@{EKSCTL_VERSION} failed:\n{proc.stderr}{info}"
        )
    if info.get("Sum") != EKSCTL_SUM:
        raise RuntimeError(
            f"{EKSCTL_MODULE}@{EKSCTL_VERSION} has sum {info.get('Sum')}, expected {EKSCTL_SUM}"
        )
    schema: dict[str, Any] = json.loads((Path(info["Dir"]) / EKSCTL_SCHEMA).read_text())
    return schema
