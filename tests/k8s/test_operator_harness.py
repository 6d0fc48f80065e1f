"""The RayJob harness (KubeRay's pods, honestly replaced), alone and driving the operator.

The first two tests check the harness itself with trivial entrypoints; the
last runs the whole stage 1 for real: the operator builds the RayJob, the
harness runs its entrypoint (`python -m vectorpipe_workloads etl` over the
mounted pipeline YAML) with a local Ray on a small FASTA file, the real
manifest appears, and the operator moves on to stage 2.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.operator import Cluster, condition, start_operator
from tests.support.rayjob_harness import LocalRayHead, RayJobHarness

pytestmark = pytest.mark.k8s


def rayjob(name: str, entrypoint: str) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": entrypoint,
            "rayClusterSpec": {
                "rayVersion": "2.60.0",
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "ray-head",
                                    "image": "vectorpipe/ray-worker:0.1.0",
                                    "volumeMounts": [
                                        {"name": "pipeline", "mountPath": "/etc/vectorpipe"}
                                    ],
                                }
                            ],
                            "volumes": [{"name": "pipeline", "configMap": {"name": "cfg"}}],
                        }
                    },
                },
            },
        },
    }


def test_harness_runs_the_entrypoint_over_the_mounted_configmap(
    crds: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster = Cluster(crds, namespace)
    crds.kubectl(
        "create", "configmap", "cfg", "-n", namespace, "--from-literal=pipeline.yaml=hello: world"
    )
    code = "import pathlib; print(pathlib.Path('/etc/vectorpipe/pipeline.yaml').read_text())"
    cluster.create(rayjob("ok", f'python -c "{code}"'))
    with RayJobHarness(crds.kubeconfig, namespace, workdir=tmp_path) as harness:
        res = harness.wait_for("ok", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "hello: world" in res.stdout
    status = cluster.must("rayjob", "ok")["status"]
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Complete", "SUCCEEDED")
    assert status["startTime"] and status["endTime"]
    assert status["jobId"].startswith("ok-")


def test_harness_reports_a_failed_entrypoint_like_kuberay(
    crds: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster = Cluster(crds, namespace)
    crds.kubectl("create", "configmap", "cfg", "-n", namespace, "--from-literal=pipeline.yaml=x")
    cluster.create(rayjob("bad", "python -c \"import sys; print('boom'); sys.exit(3)\""))
    with RayJobHarness(crds.kubeconfig, namespace, workdir=tmp_path) as harness:
        assert harness.wait_for("bad", timeout=120).returncode == 3
    status = cluster.must("rayjob", "bad")["status"]
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Failed", "FAILED")
    assert status["reason"] == "AppFailed"
    assert "failed with exit code 3" in status["message"] and "boom" in status["message"]


def write_fasta(path: Path, reads: int, length: int = 120, seed: int = 3) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for i in range(reads):
            f.write(f">read{i}\n{''.join(rng.choice('ACGT') for _ in range(length))}\n")


@pytest.mark.slow
def test_operator_runs_real_stage_one_through_the_harness(
    crds: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster = Cluster(crds, namespace)
    reads, out = tmp_path / "reads", tmp_path / "out"
    write_fasta(reads / "sample.fasta", reads=60)
    body = {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": "real"},
        "spec": {
            "input": {"uri": f"{reads}/"},
            "embedding": {"method": "kmer", "k": 3},
            "output": {"uri": f"{out}/", "shards": 2},
        },
    }
    # The Ray "cluster" is up before the job is submitted, as with KubeRay.
    head = LocalRayHead(num_cpus=2)
    address = head.start()
    op = start_operator(crds, namespace, tmp_path / "operator.log")
    try:
        with RayJobHarness(
            crds.kubeconfig, namespace, workdir=tmp_path / "harness", ray_address=address
        ) as harness:
            cluster.create(body)
            res = harness.wait_for("real-etl", timeout=900)
            assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
            p = cluster.wait_phase("real", "Clustering", timeout=120)
        manifest = json.loads((out / "_manifest.json").read_text())
        assert manifest["rows"] == 60 and len(manifest["shards"]) == 2
        assert p["status"]["outputs"]["rows"] == 60
        assert p["status"]["outputs"]["dim"] == 33  # canonical 3-mers + abundance
        assert condition(p, "EmbeddingComplete")["reason"] == "ManifestCommitted"
        sj = cluster.must("slurmjob", "real-kmeans")
        assert f"{out}/_manifest.json" in sj["spec"]["command"]
    finally:
        op.stop()
        head.stop()
        print(f"----- operator log (tail) -----\n{op.tail(80)}")
