"""The operator image, built for real and run without Docker.

`hack/images/build.sh operator` builds images/operator/Containerfile with buildah
(chroot isolation, the script's own store) FROM the local debootstrap base, which
hack/images/base.sh builds once and caches outside the repository; an image
whose inputs are unchanged is not rebuilt at all. The tests then open a working
container on the image (`buildah from`) and run commands in it (`buildah run
--isolation chroot`), which applies the image's USER, ENV and WORKDIR the way a
container runtime does; `--user 0:0` is used only to look for leftovers the
image's user could not see. The container is removed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.images, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "images" / "build.sh"
IMAGE = "localhost/vectorpipe/operator:dev"

# Prints {distribution name: version} for everything importable from the venv.
LIST_DISTS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


@dataclass
class Image:
    ref: str
    container: str
    config: dict[str, Any]  # the OCI image config: User, Env, Entrypoint, Labels, ...
    buildah: list[str]  # buildah with the store build.sh uses

    def run(
        self, *argv: str, user: str | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        as_user = ["--user", user] if user else []
        return subprocess.run(
            [*self.buildah, "run", "--isolation", "chroot", *as_user, self.container, "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _buildah(buildah: list[str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [*buildah, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def operator_image() -> Iterator[Image]:
    if shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        pytest.skip("buildah/debootstrap missing: run `make system-deps`")
    if os.geteuid() != 0:
        pytest.skip("buildah vfs + chroot builds and debootstrap need root")
    build = subprocess.run(
        [str(BUILD), "-q", "operator"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=2100,
        check=False,
    )
    assert build.returncode == 0, f"hack/images/build.sh operator failed:\n{build.stderr[-4000:]}"
    buildah = subprocess.run(
        [str(BUILD), "--buildah"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    config = json.loads(_buildah(buildah, "inspect", "--type", "image", IMAGE))["OCIv1"]["config"]
    container = _buildah(buildah, "from", "--pull=never", "--quiet", IMAGE)
    try:
        yield Image(IMAGE, container, config, buildah)
    finally:
        _buildah(buildah, "rm", container)


def test_image_metadata(operator_image: Image) -> None:
    config = operator_image.config
    assert config["User"] == "1000:1000"  # numeric, so runAsNonRoot can be verified
    assert config["Entrypoint"] == ["python", "-m", "vectorpipe_operator"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["NUMBA_CACHE_DIR"].startswith("/tmp/")
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "vectorpipe-operator"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.base.name"] == "localhost/vectorpipe-base:bookworm"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels["org.opencontainers.image.revision"])
    assert re.fullmatch(r"[0-9a-f]{64}", labels["io.vectorpipe.build-inputs"])


def test_runs_as_non_root_user(operator_image: Image) -> None:
    result = operator_image.run("id", "-u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1000"
    # The venv belongs to root: the process cannot modify its own code...
    result = operator_image.run("sh", "-c", "touch /opt/venv/x")
    assert result.returncode != 0
    # ...but HOME and /tmp are writable (in the cluster /tmp is an emptyDir).
    result = operator_image.run(
        "sh", "-c", 'touch "$HOME/.probe" /tmp/.probe && rm "$HOME/.probe" /tmp/.probe'
    )
    assert result.returncode == 0, result.stderr


def test_entrypoint_and_imports_write_nothing_outside_tmp(operator_image: Image) -> None:
    # What the chart's readOnlyRootFilesystem relies on: the entrypoint and the
    # imports leave no file behind anywhere but /tmp (no byte code, no caches).
    marker = operator_image.run("sh", "-c", "touch /tmp/.marker && sleep 1")
    assert marker.returncode == 0, marker.stderr
    entrypoint = operator_image.config["Entrypoint"]
    result = operator_image.run(*entrypoint, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    result = operator_image.run(
        "python", "-c", "import vectorpipe_operator, kopf, kubernetes; print(kopf.__file__)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("/opt/venv/")
    result = operator_image.run("python", "-c", "import vectorpipe_api.pipeline")
    assert result.returncode == 0, result.stderr
    # buildah run itself bind-mounts these into the container.
    runtime_files = (
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/hostname",
        "/run",
        "/run/.containerenv",
    )
    skip = " ".join(f"-not -path {path}" for path in runtime_files)
    written = operator_image.run(
        "sh",
        "-c",
        f"find / -xdev -newer /tmp/.marker -not -path '/tmp/*' -not -path /tmp {skip} -print",
        user="0:0",
    )
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == ""


def test_only_the_operator_extra_is_installed(operator_image: Image) -> None:
    result = operator_image.run("python", "-c", "import ray")
    assert result.returncode != 0
    assert "No module named 'ray'" in result.stderr


def test_lock_pins_are_honoured(operator_image: Image) -> None:
    result = operator_image.run("python", "-c", LIST_DISTS)
    assert result.returncode == 0, result.stderr
    installed = {_canonical(name): version for name, version in json.loads(result.stdout).items()}
    assert (
        installed.pop("vectorpipe")
        == operator_image.config["Labels"]["org.opencontainers.image.version"]
    )
    subset = subprocess.run(
        [sys.executable, "images/lock_subset.py", "--extra", "operator"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    expected = {
        _canonical(name): version
        for name, version in re.findall(r"^([A-Za-z0-9][\w.-]*)==([^\s;\\]+)", subset, re.M)
    }
    # Exactly the pinned subset, each at requirements.lock's version: nothing
    # resolved at build time, and pip/setuptools gone from the venv.
    assert installed == expected


def test_no_build_tools_or_caches_left(operator_image: Image) -> None:
    result = operator_image.run("sh", "-c", "command -v gcc cc make pip pip3 || true")
    assert result.stdout.strip() == ""
    result = operator_image.run("python", "-m", "pip", "--version")
    assert result.returncode != 0
    # As root, which can see into /root: no pip/uv caches, build sources, wheels
    # or apt lists. (The base's /usr/share/python-wheels belong to python3-venv.)
    leftovers = operator_image.run(
        "sh",
        "-c",
        "ls -d /root/.cache /home/*/.cache /src /out /opt/venv/src 2>/dev/null; "
        "find /opt /root /home /tmp /var/tmp -xdev -name '*.whl' -print; "
        "find /var/lib/apt/lists /var/cache/apt -type f -name '*_*' -print 2>/dev/null",
        user="0:0",
    )
    assert leftovers.stdout.strip() == "", leftovers.stdout
