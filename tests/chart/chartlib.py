"""Helpers the chart tests share: run the pinned helm, render the chart, pick objects out.

`Helm` runs the helm binary that ``hack/k8s/build.sh`` builds (the `Toolchain`
of tests/support/controlplane/) with its cache and config under a temp dir, so a
test never reads or writes the user's helm state. `render` turns values into
the list of objects `helm template` prints; `find`/`only` select them by kind
and name. Kubernetes' version is passed explicitly: a helm built from Go
modules without release ldflags assumes v1.20, older than the chart's
kubeVersion.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane import Toolchain

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "vectorpipe"
KUBE_VERSION = "1.36.0"

Obj = dict[str, Any]


class Helm:
    """The pinned helm with private cache/config/data dirs."""

    def __init__(self, toolchain: Toolchain, home: Path | None = None) -> None:
        self.binary = toolchain.binary("helm")
        self.home = home or Path(tempfile.mkdtemp(prefix="vp-helm-"))

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            **(env or {}),
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        res = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            check=False,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {res.returncode}:\n{res.stderr}")
        return res

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = "vp",
        namespace: str = "vp-system",
        extra: Iterable[str] = (),
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        args = ["template", release, str(CHART), "-n", namespace, "--kube-version", KUBE_VERSION]
        return self.run(*args, *values_args(values), *extra, check=check)


def values_args(values: Mapping[str, Any] | None) -> list[str]:
    """`--values <file>` for a dict (JSON is YAML), or nothing."""
    if not values:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(values, f)
    return ["--values", f.name]


def parse(text: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all(text) if d]


def render(helm: Helm, values: Mapping[str, Any] | None = None, **kw: Any) -> list[Obj]:
    return parse(helm.template(values, **kw).stdout)


def find(objs: Iterable[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def only(objs: Iterable[Obj], kind: str, name: str) -> Obj:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def container(deployment: Obj) -> Obj:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(c)


def hook_script(objs: Iterable[Obj]) -> str:
    """The Python program the `helm test` Pod runs."""
    (pod,) = [o for o in find(objs, "Pod") if o["metadata"]["annotations"].get("helm.sh/hook")]
    c = pod["spec"]["containers"][0]
    assert c["command"] == ["python", "-c"]
    return str(c["args"][0])
