"""Fixtures of the fault and security suite.

The control plane (`k8s`), Slurm (`slurm`), S3 (`s3`) and Ray (`ray_session`)
are the session-wide ones from tests/conftest.py; fault tests stop and restart
their parts (the API server, slurmrestd, a Slurm node) and always bring them
back before they end, so the tests that run after them see a healthy cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from slurm_bridge.client import SlurmRestClient, static_token
from tests.k8s.controlplane import ControlPlane
from tests.k8s.test_operator import CRDS
from tests.services.slurm import LocalSlurm


@pytest.fixture(scope="module")
def crds(k8s: ControlPlane) -> ControlPlane:
    k8s.apply_crds(CRDS)
    return k8s


@pytest.fixture
def rest(slurm: LocalSlurm) -> Iterator[SlurmRestClient]:
    """Slurm as the tests see it, independent of the bridge."""
    with SlurmRestClient(slurm.rest_url, "root", static_token(slurm.token())) as client:
        yield client
