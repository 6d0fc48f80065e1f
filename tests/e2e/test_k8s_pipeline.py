"""Issue 5's end-to-end test: one VectorPipeline through every real component.

`kubectl apply -f` a VectorPipeline on the real kube-apiserver; the operator
runs as a subprocess, stage 1 runs its real entrypoint on a local Ray through
the RayJob harness, stage 2 runs through the real slurm-bridge (a subprocess)
on the local Slurm via slurmrestd with a JWT in a Secret, and every byte of
input and output lives in the loopback S3 API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slurm_bridge.client import SlurmRestClient
from slurm_bridge.options import ENV_PREFIX
from tests.services.s3 import LocalS3
from tests.services.slurm import LocalSlurm
from tests.support.bridge import Rig, slurm_jobs_of
from tests.support.controlplane import ControlPlane
from tests.support.operator import Cluster, owner_of, start_operator
from tests.support.rayjob_harness import CREDENTIAL_KEYS, LocalRayHead, RayJobHarness
from vectorpipe_workloads.manifest import clustering_uri

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.k8s,
    pytest.mark.slurm,
    pytest.mark.s3,
    pytest.mark.ray,
    pytest.mark.mpi,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "examples" / "data"
TIMEOUT = 900.0


def _key(uri: str) -> tuple[str, str]:
    assert uri.startswith("s3://"), uri
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _keys(s3c: Any, bucket: str, prefix: str) -> set[str]:
    pages = s3c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_vectorpipeline_runs_end_to_end_on_kubernetes_ray_slurm_and_s3(
    crds: ControlPlane,
    namespace: str,
    slurm: LocalSlurm,
    rest: SlurmRestClient,
    s3: LocalS3,
    tmp_path: Path,
) -> None:
    # -- the data, in S3 -------------------------------------------------------------------
    bucket = s3.create_bucket("vp-e2e")
    s3c = s3.client()
    inputs = sorted(p for p in DATA.iterdir() if p.is_file())
    for p in inputs:
        s3c.upload_file(str(p), bucket, f"reads/{p.name}")
    out_uri = f"s3://{bucket}/runs/e2e/"

    # -- the controllers -------------------------------------------------------------------
    cluster = Cluster(crds, namespace)
    rig = Rig(crds, slurm, namespace, tmp_path)
    rig.secret("slurm-jwt", rig.token)
    # Stage 1 gets the loopback S3's dummy keys as its identity (what IRSA or an
    # instance role is on a cluster); the endpoint only through the RayJob's pod
    # env, which the harness passes on and nothing else (no inherited AWS_*).
    identity = {k: v for k, v in s3.env().items() if k in CREDENTIAL_KEYS}
    head = LocalRayHead(num_cpus=2, credentials=identity)
    address = head.start()
    op = None
    try:
        # The operator passes only the endpoint and region, as k-means flags (real clusters
        # use the compute nodes' instance role); the loopback S3's dummy keys, and nothing
        # else of its settings, come from the bridge's --job-env defaults, through its
        # environment (the Rig owns the command line).
        creds = ",".join(f"{k}={v}" for k, v in identity.items())
        rig.start_bridge(env={f"{ENV_PREFIX}JOB_ENV": creds})
        op = start_operator(crds, namespace, tmp_path / "operator.log")
        body = {
            "apiVersion": "vectorpipe.io/v1alpha1",
            "kind": "VectorPipeline",
            "metadata": {"name": "e2e"},
            "spec": {
                "input": {"uri": f"s3://{bucket}/reads/", "format": "auto"},
                "embedding": {"method": "kmer", "k": 4, "canonical": True},
                "output": {"uri": out_uri, "format": "parquet", "shards": 4},
                "s3": {"endpointUrl": s3.endpoint_url, "region": "us-east-1"},
                "hpc": {
                    "slurm": {
                        "endpoint": slurm.rest_url,
                        "tokenSecretRef": {"name": "slurm-jwt"},
                        "user": "root",
                        "nodes": 1,
                        "ntasksPerNode": 2,
                        "timeLimit": "00:10:00",
                    },
                    "app": {"name": "kmeans", "clusters": 3, "seed": 0},
                },
            },
        }
        manifest_file = tmp_path / "pipeline.yaml"
        manifest_file.write_text(json.dumps(body))
        with RayJobHarness(
            crds.kubeconfig,
            namespace,
            workdir=tmp_path / "harness",
            ray_address=address,
            credentials=identity,
        ) as harness:
            crds.kubectl("apply", "-n", namespace, "-f", str(manifest_file))
            res = harness.wait_for("e2e-etl", timeout=TIMEOUT)
            assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
            # The endpoint reached stage 1 from the pod template, not from this process.
            assert harness.envs["e2e-etl"]["AWS_ENDPOINT_URL_S3"] == s3.endpoint_url
            vp = cluster.wait_phase("e2e", "Succeeded", timeout=TIMEOUT)

        # -- Kubernetes side ---------------------------------------------------------------
        uid = vp["metadata"]["uid"]
        status = vp["status"]
        outputs = status["outputs"]
        assert outputs["rows"] == 15000, outputs
        assert outputs["dim"] == 137, outputs  # 4-mers + abundance
        rj = cluster.must("rayjob", "e2e-etl")
        assert owner_of(rj) == [("VectorPipeline", "e2e", uid, True)]
        sj = cluster.must("slurmjob", "e2e-kmeans")
        assert owner_of(sj) == [("VectorPipeline", "e2e", uid, True)]
        assert sj["status"]["phase"] == "Succeeded", sj["status"]

        # -- Slurm side: exactly one job, carrying the SlurmJob's UID -----------------------
        jobs = slurm_jobs_of(rest, sj["metadata"]["uid"])
        assert len(jobs) == 1, jobs
        assert jobs[0].job_id == sj["status"]["jobId"]
        assert jobs[0].state == "COMPLETED", jobs[0]

        # -- S3 side ------------------------------------------------------------------------
        _, out_prefix = _key(out_uri)
        keys = _keys(s3c, bucket, out_prefix)
        manifest_key = f"{out_prefix}_manifest.json"
        assert manifest_key in keys, sorted(keys)
        manifest = json.loads(s3c.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        assert manifest["rows"] == 15000
        shards = [s["path"] for s in manifest["shards"]]
        assert len(shards) == 4, manifest["shards"]
        for shard in shards:
            name = shard.rsplit("/", 1)[-1]
            assert f"{out_prefix}{name}" in keys, (shard, sorted(keys))
        assert outputs["shards"] == 4, outputs
        assert outputs["manifest"] == f"{out_uri}_manifest.json", outputs
        c_bucket, c_prefix = _key(clustering_uri(out_uri))
        assert c_bucket == bucket
        c_keys = _keys(s3c, bucket, c_prefix)
        for name in ("centroids.parquet", "metrics.json", "_SUCCESS"):
            assert f"{c_prefix}{name}" in c_keys, (name, sorted(c_keys))
        metrics = json.loads(
            s3c.get_object(Bucket=bucket, Key=f"{c_prefix}metrics.json")["Body"].read()
        )
        # Stage 2 ran as one MPI job of exactly the ranks the pipeline asked for:
        # nodes x ntasksPerNode, as the world size rank 0 recorded.
        slurm_spec = body["spec"]["hpc"]["slurm"]
        ranks = slurm_spec["nodes"] * slurm_spec["ntasksPerNode"]
        assert (sj["spec"]["nodes"], sj["spec"]["ntasksPerNode"]) == (1, 2), sj["spec"]
        assert metrics["ranks"] == ranks == 2, metrics
        assert (metrics["rows"], metrics["dim"], metrics["clusters"]) == (15000, 137, 3), metrics
    finally:
        if op is not None:
            op.stop()
            print(f"----- operator log (tail) -----\n{op.tail(150)}")
        for b in rig.bridges:
            b.stop()
        for i, b in enumerate(rig.bridges):
            print(f"----- bridge {i} log (tail) -----\n{b.tail(150)}")
        head.stop()
