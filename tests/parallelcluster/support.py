"""Paths and helpers for the ParallelCluster tests (fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PC_DIR = REPO / "slurm-bridge" / "parallelcluster"
CONFIG = PC_DIR / "cluster-config.yaml"
POST_INSTALL = PC_DIR / "post-install.sh"
VALIDATE = PC_DIR / "validate.sh"
FACTS = PC_DIR / "offline-facts.json"
DOC = REPO / "docs" / "parallelcluster.md"

# A slurm.conf as ParallelCluster 3's cookbook renders it (the parts that matter:
# its two include lines, StateSaveLocation and SlurmUser).
PCLUSTER_SLURM_CONF = """\
ClusterName=vectorpipe
SlurmUser=slurm
SlurmctldPort=6820-6829
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=/var/spool/slurm.state
SlurmdSpoolDir=/var/spool/slurmd
#
# WARNING!!! The slurm_parallelcluster.conf file included below can be updated by the pcluster process.
# Please do not edit it.
include slurm_parallelcluster.conf

# WARNING!!! The custom_slurm_settings_include_file_slurm.conf file included below can be updated by the pcluster process.
# Please do not edit it.
include pcluster/custom_slurm_settings_include_file_slurm.conf
"""

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:vectorpipe/slurm-jwt-AbCdEf"


@dataclass
class Render:
    root: Path
    proc: subprocess.CompletedProcess[str]

    def file(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def text(self, path: str) -> str:
        return self.file(path).read_text()


RenderFn = Callable[..., Render]


def default_args(*extra: str) -> list[str]:
    return [
        "--user", "vectorpipe",
        "--secret-id", SECRET_ARN,
        "--allowed-cidr", "10.0.0.0/16",
        *extra,
    ]  # fmt: skip


def need_tool(name: str, package: str) -> str:
    """The tool's path; a failure, never a skip, where it is missing.

    `make test` installs every tool these tests use (hack/install-system-deps.sh
    via `make system-deps`), so a missing one is a broken machine, not a reason
    to report green without running.
    """
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not installed (Debian package {package}; hack/install-system-deps.sh)",
            pytrace=False,
        )
    return path
