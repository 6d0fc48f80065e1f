"""Fixtures shared by every tier, each started at most once per session.

`s3`: the loopback S3 API. `ray_session`: one local Ray. `slurm`: munged,
slurmctld, slurmd and slurmrestd with JWT on loopback (tests/services/slurm.py).
`k8s`: a real control plane (etcd, kube-apiserver, controller-manager,
scheduler) with KubeRay's CRDs, built from Go modules on first use
(tests/support/controlplane/); `kuberay` (module scope) adds a kwok node and the
real KubeRay operator and stops them after the module, because other modules
play KubeRay's part themselves; `namespace` is a fresh namespace per test.
They live here, not in a folder's conftest, so every folder shares one
instance: import none of them into a test module (that would start a second).
When a test that used the cluster fails, every component's log tail is attached.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from slurm_bridge.client import SlurmRestClient, static_token
from tests.services.s3 import LocalS3, local_s3
from tests.services.slurm import LocalSlurm, slurm_fixture
from tests.support.controlplane import ControlPlane, ControlPlaneError, Toolchain

VECTORPIPE_CRDS = sorted(
    (Path(__file__).resolve().parents[1] / "charts" / "vectorpipe" / "crds").glob(
        "vectorpipe.io_*.yaml"
    )
)


@pytest.fixture(scope="session")
def s3() -> Iterator[LocalS3]:
    """The loopback S3 API; its endpoint and dummy credentials go into the environment
    for the whole session so Ray workers and mpirun ranks started later inherit them."""
    with local_s3() as server:
        saved = {k: os.environ.get(k) for k in server.env()}
        os.environ.update(server.env())
        yield server
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def ray_session(s3: LocalS3) -> Iterator[Any]:
    """A local Ray for the whole session; Ray workers inherit S3 settings per task args."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from vectorpipe_workloads.runner import start_ray

    start_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def slurm() -> Iterator[LocalSlurm]:
    yield from slurm_fixture()


@pytest.fixture(scope="session")
def k8s_toolchain() -> Toolchain:
    """The built binaries, CRDs and kwok stages; builds them when the cache is cold."""
    try:
        return Toolchain.build()
    except ControlPlaneError as exc:
        # Fail rather than skip: a silently skipped k8s suite looks green.
        pytest.fail(f"building the Kubernetes toolchain failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def k8s(k8s_toolchain: Toolchain) -> Iterator[ControlPlane]:
    """A running control plane with KubeRay's CRDs installed and Established."""
    cp = ControlPlane(k8s_toolchain)
    cp.start()
    try:
        cp.apply_crds(k8s_toolchain.crds)
    except BaseException:
        print(cp.log_tails(), file=sys.stderr)
        cp.stop()
        raise
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def kuberay(k8s: ControlPlane) -> Iterator[ControlPlane]:
    """The session cluster plus one kwok fake node and the real KubeRay operator.

    Module scope, stopped afterwards: other modules (test_operator.py) play
    KubeRay's part by patching RayJob status, and a live KubeRay would race them.
    """
    k8s.start_kwok()
    k8s.start_kuberay_operator()
    yield k8s
    k8s.stop_component("kuberay-operator")
    k8s.stop_component("kwok")


@pytest.fixture(scope="module")
def crds(k8s: ControlPlane) -> ControlPlane:
    """The session cluster with VectorPipe's own CRDs (charts/vectorpipe/crds) applied."""
    k8s.apply_crds(VECTORPIPE_CRDS)
    return k8s


@pytest.fixture
def rest(slurm: LocalSlurm) -> Iterator[SlurmRestClient]:
    """Slurm as the tests see it, independent of any bridge (tests/slurm has its own)."""
    with SlurmRestClient(slurm.rest_url, "root", static_token(slurm.token())) as client:
        yield client


@pytest.fixture
def namespace(k8s: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    # Namespace names are DNS labels: lower case, at most 63 characters.
    prefix = (
        "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
        or "test"
    )
    name = k8s.create_namespace(prefix)
    yield name
    k8s.delete_namespace(name, wait=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    funcargs = getattr(item, "funcargs", {})
    cp = funcargs.get("k8s") or funcargs.get("kuberay")
    if report.failed and isinstance(cp, ControlPlane):
        report.sections.append(("control plane logs", cp.log_tails()))
    return report
