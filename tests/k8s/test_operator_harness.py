"""The RayJob harness (KubeRay's pods, honestly replaced), alone and driving the operator.

The first tests check the harness itself with trivial entrypoints, including
that an entrypoint gets exactly its pod's declared env and none of the test's
own S3 settings; the last runs the whole stage 1 for real: the operator builds
the RayJob, the harness runs its entrypoint (`python -m vectorpipe_workloads
etl` over the mounted pipeline YAML) with a local Ray on a small FASTA file,
the real manifest appears, and the operator moves on to stage 2.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from tests.services.s3 import LocalS3
from tests.support.controlplane import ControlPlane
from tests.support.operator import Cluster, condition, start_operator
from tests.support.rayjob_harness import (
    BASICS,
    CREDENTIAL_KEYS,
    LocalRayHead,
    RayJobHarness,
)

pytestmark = pytest.mark.k8s


def rayjob(name: str, entrypoint: str, env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
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
    if env is not None:
        head = body["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
        head["containers"][0]["env"] = env
    return body


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


# Reads one object through boto3's default chain: the endpoint can only come from
# the environment. One quick attempt, so a wrong endpoint fails in seconds.
S3_PROBE = (
    "import os, boto3, botocore.config as c; "
    "s3 = boto3.client('s3', region_name='us-east-1', config=c.Config(connect_timeout=3, "
    "read_timeout=5, retries={'total_max_attempts': 1})); "
    "print(s3.get_object(Bucket=os.environ['PROBE_BUCKET'], Key='probe.txt')['Body'].read().decode())"
)


@pytest.mark.s3
def test_entrypoint_sees_only_the_pods_env_never_the_tests_s3_settings(
    crds: ControlPlane, namespace: str, s3: LocalS3, tmp_path: Path
) -> None:
    # The leak this guards against is real: the session exports the loopback S3's
    # endpoint into this process's environment.
    assert os.environ["AWS_ENDPOINT_URL_S3"] == s3.endpoint_url
    bucket = s3.create_bucket("vp-harness-env")
    s3.client().put_object(Bucket=bucket, Key="probe.txt", Body=b"reached the loopback S3")
    cluster = Cluster(crds, namespace)
    crds.kubectl("create", "configmap", "cfg", "-n", namespace, "--from-literal=pipeline.yaml=x")
    crds.kubectl(
        "create", "secret", "generic", "probe", "-n", namespace, f"--from-literal=bucket={bucket}"
    )
    bucket_from_secret = {
        "name": "PROBE_BUCKET",
        "valueFrom": {"secretKeyRef": {"name": "probe", "key": "bucket"}},
    }
    entrypoint = f'python -c "{S3_PROBE}"'
    # Declares the endpoint, as the operator's RayJobs do ...
    cluster.create(
        rayjob(
            "declared",
            entrypoint,
            [{"name": "AWS_ENDPOINT_URL_S3", "value": s3.endpoint_url}, bucket_from_secret],
        )
    )
    # ... and forgets it: the endpoint in this process's environment must not save it.
    cluster.create(rayjob("forgotten", entrypoint, [bucket_from_secret]))
    identity = {k: v for k, v in s3.env().items() if k in CREDENTIAL_KEYS}
    with RayJobHarness(
        crds.kubeconfig, namespace, workdir=tmp_path, credentials=identity
    ) as harness:
        declared = harness.wait_for("declared", timeout=120)
        forgotten = harness.wait_for("forgotten", timeout=120)

    assert declared.returncode == 0, declared.stdout + declared.stderr
    assert declared.stdout.strip() == "reached the loopback S3"
    assert forgotten.returncode != 0, forgotten.stdout + forgotten.stderr
    assert "reached the loopback S3" not in forgotten.stdout
    status = cluster.must("rayjob", "forgotten")["status"]
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Failed", "FAILED")

    # What each entrypoint got: the basics, the identity, the pod's env; nothing else.
    env = harness.envs["forgotten"]
    assert set(env) <= {*BASICS, *CREDENTIAL_KEYS, "PROBE_BUCKET"}, sorted(env)
    assert env["PROBE_BUCKET"] == bucket
    assert not any(s3.endpoint_url in v for v in env.values()), env
    assert not [k for k in env if k.startswith("AWS_") and k not in CREDENTIAL_KEYS], env
    assert harness.envs["declared"]["AWS_ENDPOINT_URL_S3"] == s3.endpoint_url


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
