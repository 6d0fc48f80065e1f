"""The chart's RBAC is enough: the real processes, authenticated as the chart's ServiceAccounts.

The chart is installed, a token is issued for its ServiceAccount (`kubectl
create token`, a real bound token verified by the API server, not
impersonation) and written into a kubeconfig next to the fixture's CA and
server. The operator (`start_operator` of tests/support/operator.py) then
runs a pipeline through both stages, with the test playing KubeRay's and the
slurm-bridge's parts as test_operator.py does; the slurm-bridge (`Rig` of
tests/support/bridge.py) runs a real job through the local
slurmrestd, reading its token Secret with its own identity, and is refused a
Secret the chart did not name. Both run in namespaced scope because both
helpers start the processes with `--namespace`, which is exactly what the chart
does in that scope (in cluster scope it passes `--all-namespaces`, and the
ClusterRole holds the same rules: test_install.py checks both). The `helm
test` hook's program runs with the operator's identity too. Any 403 would
show up as a stuck phase or a Forbidden condition.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chart.chartlib import CHART, Helm, hook_script, render, values_args
from tests.services.slurm import LocalSlurm
from tests.support.bridge import Rig
from tests.support.controlplane import ControlPlane
from tests.support.operator import Cluster, commit_manifest, pipeline, start_operator

pytestmark = pytest.mark.k8s


class AsServiceAccount(ControlPlane):
    """The same control plane; processes started from it (`env`) authenticate as a
    ServiceAccount, while `kubectl` (the test's own hands) stays admin."""

    def __init__(self, cp: ControlPlane, kubeconfig: Path) -> None:
        self.__dict__.update(cp.__dict__)
        self.sa_kubeconfig = kubeconfig

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.sa_kubeconfig)}

    def stop(self) -> None:  # the fixture owns the processes, never this view
        raise RuntimeError("AsServiceAccount is a view; stop the ControlPlane itself")


def sa_kubeconfig(k8s: ControlPlane, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig with the fixture's server and CA and a fresh token of `sa`."""
    token = k8s.kubectl("create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()
    config = json.loads(k8s.kubeconfig.read_text())
    config["users"] = [{"name": sa, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = sa
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    whoami = subprocess.run(
        [str(k8s.toolchain.binary("kubectl")), f"--kubeconfig={path}", "auth", "whoami", "-o", "json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    user = json.loads(whoami.stdout)["status"]["userInfo"]["username"]
    assert user == f"system:serviceaccount:{namespace}:{sa}"
    return path


@pytest.fixture(scope="module")
def helm(k8s: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(k8s.toolchain, tmp_path_factory.mktemp("helm"))


@pytest.fixture
def watched(k8s: ControlPlane) -> Iterator[str]:
    """The namespace pipelines run in, apart from the release's own."""
    name = k8s.create_namespace("chart-pipelines")
    yield name
    k8s.delete_namespace(name)


def install(helm: Helm, k8s: ControlPlane, namespace: str, values: dict[str, object]) -> str:
    release = f"vp-{uuid.uuid4().hex[:6]}"
    helm.run(
        "install", release, str(CHART), f"--kubeconfig={k8s.kubeconfig}", "-n", namespace,
        *values_args(values),
    )  # fmt: skip
    return release


def uninstall(helm: Helm, k8s: ControlPlane, namespace: str, release: str) -> None:
    helm.run("uninstall", release, f"--kubeconfig={k8s.kubeconfig}", "-n", namespace, check=False)


def test_operator_runs_a_pipeline_with_the_namespaced_role(
    helm: Helm, k8s: ControlPlane, namespace: str, watched: str, tmp_path: Path
) -> None:
    values = {"rbac": {"scope": "namespaced", "namespaces": [watched]}}
    release = install(helm, k8s, namespace, values)
    sa = f"{release}-vectorpipe-operator"
    as_sa = AsServiceAccount(k8s, sa_kubeconfig(k8s, namespace, sa, tmp_path / "sa.kubeconfig"))
    op = start_operator(as_sa, watched, tmp_path / "operator.log")
    try:
        cluster = Cluster(k8s, watched)
        out = tmp_path / "out"
        cluster.create(pipeline("chart", out))
        cluster.wait("RayJob chart-etl", lambda: cluster.get("rayjob", "chart-etl"))
        assert cluster.get("configmap", "chart-pipeline") is not None
        p = cluster.wait_phase("chart", "Pending")
        assert p["status"]["ray"] == {"rayJob": "chart-etl"}

        # KubeRay's part: stage 1 succeeds after writing its manifest.
        commit_manifest(out, rows=321, shards=2)
        cluster.set_status(
            "rayjob", "chart-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
        )
        cluster.wait("SlurmJob chart-kmeans", lambda: cluster.get("slurmjob", "chart-kmeans"))
        p = cluster.wait_phase("chart", "Clustering")
        assert p["status"]["outputs"]["rows"] == 321

        # The slurm-bridge's part: stage 2 succeeds.
        cluster.set_status(
            "slurmjob", "chart-kmeans",
            {"phase": "Succeeded", "jobId": 7, "state": "COMPLETED", "exitCode": 0},
        )  # fmt: skip
        p = cluster.wait_phase("chart", "Succeeded")
        assert p["status"]["slurm"]["jobId"] == 7
        # Events were posted with the ServiceAccount's own identity.
        cluster.wait(
            "transition events",
            lambda: {e["reason"] for e in cluster.events("chart")} >= {"Created", "Succeeded"},
        )

        # The `helm test` program, with the operator's identity and its metrics endpoint.
        script = hook_script(render(helm, values, release=release, namespace=namespace))
        res = subprocess.run(
            [sys.executable, "-c", script],
            env={**as_sa.env, "METRICS_URL": op.metrics_url},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert "CRDs established" in res.stdout and "operator metrics answer" in res.stdout
    finally:
        op.stop()
        uninstall(helm, k8s, namespace, release)
        print(f"----- operator log (tail) -----\n{op.tail(120)}")
    log = op.log.read_text()
    assert "Forbidden" not in log and "Not enough permissions" not in log


@pytest.mark.slurm
def test_bridge_runs_a_slurm_job_with_the_namespaced_role(
    helm: Helm,
    k8s: ControlPlane,
    slurm: LocalSlurm,
    namespace: str,
    watched: str,
    tmp_path: Path,
) -> None:
    release = install(
        helm, k8s, namespace, {"rbac": {"scope": "namespaced", "namespaces": [watched]}}
    )
    sa = f"{release}-vectorpipe-slurm-bridge"
    as_sa = AsServiceAccount(k8s, sa_kubeconfig(k8s, namespace, sa, tmp_path / "sa.kubeconfig"))
    rig = Rig(as_sa, slurm, watched, tmp_path)
    try:
        rig.secret("slurm-jwt", rig.token)
        rig.secret("not-named-in-the-chart", rig.token)
        rig.start_bridge()
        rig.create("hello", script='#!/bin/bash\necho "hello from $SLURM_JOB_ID"\n')
        st = rig.wait_phase("hello", "Succeeded")
        assert (st["state"], st["exitCode"]) == ("COMPLETED", 0)
        assert rig.output("hello", st["jobId"]).strip() == f"hello from {st['jobId']}"
        assert "Succeeded" in [r for r, _ in rig.wait_event("hello", "Succeeded")]

        # A token Secret the chart did not name is refused by RBAC, and says so.
        rig.create(
            "other",
            script="#!/bin/bash\ntrue\n",
            slurm={
                "endpoint": slurm.rest_url,
                "tokenSecretRef": {"name": "not-named-in-the-chart"},
                "user": "root",
            },
        )
        st = rig.wait(
            "other", lambda s: "Forbidden" in json.dumps(s), "a Forbidden condition", timeout=60
        )
        assert "check the controller's RBAC" in json.dumps(st)
        assert "jobId" not in st
    finally:
        for b in rig.bridges:
            b.stop()
        uninstall(helm, k8s, namespace, release)
        for b in rig.bridges:
            print(f"----- bridge log (tail) -----\n{b.tail(120)}")
