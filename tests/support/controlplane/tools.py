"""The pinned Kubernetes tools: where they come from and how the tests run kubectl and helm.

`Toolchain` is the build output of ``hack/k8s/build.sh`` (binaries built from
Go modules, KubeRay's CRDs, kwok's stages, the pinned versions); `build()`
runs the script, a sub-second no-op once the cache is warm. `kubectl` and
`helm` run those binaries against one kubeconfig and raise
`ControlPlaneError`, the error every part of the control plane raises, when
asked to check the exit code. helm gets its cache, config and data dirs under
the control plane's temp dir so a test never touches the user's helm state.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "k8s" / "build.sh"


class ControlPlaneError(RuntimeError):
    """A component failed to start, died, or a kubectl call failed."""


@dataclass(frozen=True)
class Toolchain:
    """The build output of hack/k8s/build.sh: bin/, crds/, kwok-stages/, versions.env."""

    root: Path

    @classmethod
    def build(cls, script: Path = BUILD_SCRIPT, timeout: float = 3600.0) -> Toolchain:
        """Run the build script (a sub-second no-op when the cache is warm)."""
        # Output streams to our stderr so a cold 15-minute build shows progress
        # instead of looking hung; only the last stdout line (the bin dir) matters.
        proc = subprocess.run(
            ["bash", str(script)], stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"{script} failed with exit code {proc.returncode}")
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise ControlPlaneError(f"{script} printed no bin dir")
        return cls(Path(lines[-1]).parent)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def crds(self) -> list[Path]:
        """KubeRay's CRD manifests (ray.io_*.yaml), copied out of the Go module."""
        return sorted((self.root / "crds").glob("ray.io_*.yaml"))

    @property
    def kwok_stages(self) -> Path:
        return self.root / "kwok-stages"

    @property
    def versions(self) -> dict[str, str]:
        """The pinned versions, e.g. {'K8S_VERSION': 'v1.36.3', ...}."""
        out: dict[str, str] = {}
        for line in (self.root / "versions.env").read_text().splitlines():
            if "=" in line:
                key, _, value = line.partition("=")
                out[key.strip()] = value.strip()
        return out

    def binary(self, name: str) -> Path:
        path = self.bin / name
        if not os.access(path, os.X_OK):
            raise ControlPlaneError(f"{path} is missing: run hack/k8s/build.sh")
        return path


def kubectl(
    toolchain: Toolchain,
    kubeconfig: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run the pinned kubectl with `kubeconfig`; raise on failure if check."""
    cmd = [str(toolchain.binary("kubectl")), f"--kubeconfig={kubeconfig}", *args]
    res = subprocess.run(
        cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and res.returncode != 0:
        raise ControlPlaneError(
            f"kubectl {' '.join(args)} exited {res.returncode}:\n{res.stderr.strip()}"
        )
    return res


def helm(
    toolchain: Toolchain,
    kubeconfig: Path,
    helm_home: Path,
    env: Mapping[str, str],
    *args: str,
    check: bool = True,
    timeout: float = 300.0,
) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm with `kubeconfig`, its caches under `helm_home`."""
    full_env = {
        **env,
        "HELM_CACHE_HOME": str(helm_home / "cache"),
        "HELM_CONFIG_HOME": str(helm_home / "config"),
        "HELM_DATA_HOME": str(helm_home / "data"),
    }
    cmd = [str(toolchain.binary("helm")), f"--kubeconfig={kubeconfig}", *args]
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=full_env, check=False
    )
    if check and res.returncode != 0:
        raise ControlPlaneError(
            f"helm {' '.join(args)} exited {res.returncode}:\n{res.stderr.strip()}"
        )
    return res
