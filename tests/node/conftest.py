"""Fixtures of the `node` tier: one real one-node cluster per session, and what its pods reach.

`node_cluster` is hack/cluster/cluster.sh's cluster (kubelet, containerd,
kube-proxy, CoreDNS, the real KubeRay operator in a pod) with the images from
hack/cluster/images.sh imported; `node_services` runs the S3 API and Slurm
inside its network namespace; `vectorpipe_release` is `helm install
charts/vectorpipe` into it with the locally built images. A part that cannot
start fails the tier; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.support.node import VENV_BIN, NetnsServices, NodeCluster, NodeError

RELEASE = "vp"
RELEASE_NS = "vectorpipe-system"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "node: runs real pods on the one-node cluster")


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[NodeCluster]:
    cluster = NodeCluster()
    try:
        cluster.up()
    except NodeError as exc:
        cluster.down()
        pytest.fail(f"the one-node cluster did not start: {exc}", pytrace=False)
    yield cluster
    cluster.down()


@pytest.fixture(scope="session")
def node_services(node_cluster: NodeCluster) -> Iterator[NetnsServices]:
    services = NetnsServices(node_cluster)
    try:
        services.start()
    except NodeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield services
    services.stop()


@pytest.fixture(scope="session")
def vectorpipe_release(node_cluster: NodeCluster, node_services: NetnsServices) -> str:
    """`helm install` of the chart with the images from `make images`, as a user would."""
    info = node_services.info
    job_env = f"PATH={VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
    node_cluster.helm(
        "upgrade", "--install", RELEASE, "charts/vectorpipe", "--namespace", RELEASE_NS,
        "--create-namespace",
        "--set", "operator.image.repository=localhost/vectorpipe/operator",
        "--set", "operator.image.tag=dev",
        "--set", "slurmBridge.image.repository=localhost/vectorpipe/slurm-bridge",
        "--set", "slurmBridge.image.tag=dev",
        # Slurm runs on the node itself here (as root, the only user this machine
        # has for it): the jobs find the repository's venv and the S3 API's keys
        # the way ParallelCluster's compute nodes find their software and role.
        "--set", f"slurmBridge.defaultWorkdir={info['jobs_dir']}",
        "--set-string", f"slurmBridge.jobEnv.PATH={job_env.removeprefix('PATH=')}",
        "--set-string", "slurmBridge.jobEnv.AWS_ACCESS_KEY_ID=testing",
        "--set-string", "slurmBridge.jobEnv.AWS_SECRET_ACCESS_KEY=testing",
        "--set", "slurmBridge.extraArgs={--mpirun-allow-run-as-root}",
        # A Ray image that cannot start fails its pipeline after this (tests/node faults).
        "--set", "operator.podStartTimeoutSeconds=45",
        # KubeRay's operator here is its own kustomize deployment, not its chart.
        "--set", "networkPolicy.kuberay.namespace=kuberay-system",
        "--set", "networkPolicy.kuberay.podLabels.app\\.kubernetes\\.io/name=kuberay",
        # The operator reads each run's manifest from S3 with its own identity
        # (IRSA on its service account on EKS): here the S3 API's dummy keys.
        "--set-json", 'operator.env=[{"name": "AWS_ACCESS_KEY_ID", "value": "testing"},'
        ' {"name": "AWS_SECRET_ACCESS_KEY", "value": "testing"}]',
        "--wait", "--timeout", "10m",
    )  # fmt: skip
    return RELEASE_NS


@pytest.fixture
def pipelines_namespaces(node_cluster: NodeCluster) -> Iterator[list[str]]:
    """Namespaces a test creates, deleted after it so their pods free the node's two CPUs."""
    names: list[str] = []
    yield names
    for name in names:
        node_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    cluster = getattr(item, "funcargs", {}).get("node_cluster")
    if report.failed and isinstance(cluster, NodeCluster):
        report.sections.append(("node cluster logs", cluster.log_tails()))
        report.sections.append(
            ("pods", cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False))
        )
    return report
