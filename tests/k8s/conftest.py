"""pytest fixtures for tests against a real Kubernetes control plane.

`k8s` (session) builds the pinned binaries through hack/k8s/build.sh (a
sub-second no-op when the cache is warm), starts a `ControlPlane` (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler), installs KubeRay's
CRDs and stops everything at the end of the session. `kuberay` (session) adds a
kwok fake node and the real KubeRay operator to that cluster, only for the tests
that ask for it. `namespace` gives each test its own namespace and deletes it
afterwards. When a test that used the cluster fails, the tail of every
component's log is attached to its report.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator

import pytest

from tests.k8s import controlplane as _controlplane
from tests.k8s.controlplane import ControlPlane, ControlPlaneError, Toolchain

# Some tests here were written as `from controlplane import ...`; alias that name
# to the same module object so no second copy (with its own ControlPlane
# class) is ever imported. New code should import tests.k8s.controlplane.
sys.modules.setdefault("controlplane", _controlplane)


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


@pytest.fixture(scope="session")
def kuberay(k8s: ControlPlane) -> ControlPlane:
    """The session cluster plus one kwok fake node and the real KubeRay operator."""
    k8s.start_kwok()
    k8s.start_kuberay_operator()
    return k8s


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
