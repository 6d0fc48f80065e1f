"""Fault 10 and two security checks through the whole stage-2 chain, every part real.

A VectorPipeline goes through the real operator and the real slurm-bridge
(both `python -m` subprocesses, --verbose), the real slurmrestd with a JWT
from a Secret, mpirun on the real Slurm node, and the loopback S3 API. The test
plays only KubeRay's part: it writes stage 1's shards and manifest into S3 with
the workloads' own writers, then marks the RayJob SUCCEEDED. Then:

* a pipeline deleted while its k-means runs leaves nothing behind: RayJob,
  SlurmJob and ConfigMap are gone, the Slurm job is CANCELLED, squeue shows
  none, and no process of it survives on the node;
* a pipeline whose output URI is full of shell syntax (the one free-text
  field that reaches the sbatch script) runs to Succeeded with its outputs at
  the literal key, and the injected commands never ran;
* across that run, the slurmrestd JWT and the S3 secret key appear in no log
  (operator, bridge, slurmctld, slurmd, slurmrestd, the job's output), no
  Event and no object other than the Secret itself.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slurm_bridge.client import SlurmRestClient
from slurm_bridge.options import ENV_PREFIX
from tests.services.s3 import LocalS3
from tests.services.slurm import LocalSlurm
from tests.support.bridge import Rig, slurm_jobs_of, wait_slurm
from tests.support.controlplane import ControlPlane
from tests.support.operator import Cluster, Operator, start_operator
from vectorpipe_workloads.etl.shard_writers import write_parquet_shard
from vectorpipe_workloads.manifest import Manifest, write_manifest
from vectorpipe_workloads.shards import make_table, schema_description
from vectorpipe_workloads.storage import S3Config, Store

pytestmark = [
    pytest.mark.faults,
    pytest.mark.k8s,
    pytest.mark.slurm,
    pytest.mark.s3,
    pytest.mark.mpi,
    pytest.mark.timeout(900),
]

WAIT = 300.0
DIM = 137  # canonical 4-mers + the abundance column, the default embedding


@dataclass
class Chain:
    cluster: Cluster
    rig: Rig
    op: Operator
    s3: LocalS3
    store: Store
    bucket: str
    secret_key: str

    def pipeline(self, name: str, out_uri: str, **app: Any) -> dict[str, Any]:
        return {
            "apiVersion": "vectorpipe.io/v1alpha1",
            "kind": "VectorPipeline",
            "metadata": {"name": name},
            "spec": {
                "input": {"uri": f"s3://{self.bucket}/reads/"},
                "output": {"uri": out_uri, "shards": 2},
                "s3": {"endpointUrl": self.s3.endpoint_url, "region": "us-east-1"},
                "hpc": {
                    "slurm": {
                        "endpoint": self.rig.slurm.rest_url,
                        "tokenSecretRef": {"name": "slurm-jwt"},
                        "user": "root",
                        "nodes": 1,
                        "ntasksPerNode": 2,
                        "timeLimit": "00:10:00",
                    },
                    "app": {"clusters": 3, "seed": 0, **app},
                },
            },
        }

    def finish_stage_one(self, name: str, out_uri: str, rows: int) -> None:
        """KubeRay's part: real shards and manifest in S3, then the RayJob SUCCEEDED."""
        self.cluster.wait(f"RayJob {name}-etl", lambda: self.cluster.get("rayjob", f"{name}-etl"))
        rng = np.random.default_rng(rows)
        shards = []
        for i, n in enumerate((rows // 2, rows - rows // 2)):
            vectors = rng.normal(size=(n, DIM)).astype(np.float32)
            table = make_table([f"r{i}-{j}" for j in range(n)], "fault", vectors)
            shards.append(write_parquet_shard(self.store, out_uri, i, table))
        manifest = Manifest(
            format="parquet",
            dim=DIM,
            rows=rows,
            embedding={"method": "kmer", "k": 4, "canonical": True},
            shards=shards,
            sources=[],
            schema=schema_description(DIM),
        )
        write_manifest(self.store, out_uri, manifest)
        self.cluster.set_status(
            "rayjob", f"{name}-etl", {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
        )


@pytest.fixture
def chain(
    crds: ControlPlane,
    slurm: LocalSlurm,
    s3: LocalS3,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Chain]:
    # A secret key nobody else uses, so finding it anywhere means we leaked it. The
    # operator (reads the manifest) and this process get it from the environment, the
    # Slurm job from the bridge's site-wide job environment.
    secret_key = "vpSecretKey" + secrets.token_hex(16)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    bucket = s3.create_bucket(f"vp-chain-{secrets.token_hex(4)}")
    rig = Rig(crds, slurm, namespace, tmp_path)
    rig.secret("slurm-jwt", rig.token)
    creds = f"AWS_ACCESS_KEY_ID=testing,AWS_SECRET_ACCESS_KEY={secret_key}"
    rig.start_bridge(env={f"{ENV_PREFIX}JOB_ENV": creds})
    op = start_operator(crds, namespace, tmp_path / "operator.log")
    store = Store(S3Config(endpoint_url=s3.endpoint_url, region="us-east-1"))
    yield Chain(Cluster(crds, namespace), rig, op, s3, store, bucket, secret_key)
    # Let the bridge release its finalizers before it stops, so the namespace can go.
    crds.kubectl("delete", "vectorpipelines,slurmjobs", "--all", "-n", namespace,
                 "--timeout=120s", check=False, timeout=180)  # fmt: skip
    op.stop()
    for b in rig.bridges:
        b.stop()
    print(f"----- operator log (tail) -----\n{op.tail(80)}")
    for b in rig.bridges:
        print(f"----- bridge log (tail) -----\n{b.tail(80)}")


def processes_mentioning(marker: str) -> list[int]:
    """Pids whose command line contains `marker` (the job's unique output prefix)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


def test_pipeline_deleted_mid_clustering_leaves_nothing_running(
    chain: Chain, rest: SlurmRestClient
) -> None:
    out_uri = f"s3://{chain.bucket}/runs/doomed-{secrets.token_hex(4)}/"
    # Enough rows and clusters, and tolerance 0, so the k-means is still iterating when
    # the pipeline is deleted.
    chain.cluster.create(
        chain.pipeline("gone", out_uri, clusters=256, maxIterations=100000, tolerance=0.0)
    )
    chain.finish_stage_one("gone", out_uri, rows=60000)
    chain.cluster.wait_phase("gone", "Clustering", timeout=WAIT)
    st = chain.rig.wait_phase("gone-kmeans", "Running", timeout=WAIT)
    job_id = int(st["jobId"])
    marker = out_uri.rstrip("/")
    chain.cluster.wait("the k-means ranks", lambda: len(processes_mentioning(marker)) >= 2)
    assert rest.get_job(job_id).state == "RUNNING"  # type: ignore[union-attr]
    uid = chain.cluster.must("slurmjob", "gone-kmeans")["metadata"]["uid"]

    chain.cluster.k8s.kubectl("delete", "vp", "gone", "-n", chain.cluster.ns, "--wait=false")
    kinds = [("vectorpipeline", "gone"), ("rayjob", "gone-etl"), ("slurmjob", "gone-kmeans"),
             ("configmap", "gone-pipeline")]  # fmt: skip
    chain.cluster.wait(
        "the pipeline and every child to be gone",
        lambda: all(chain.cluster.get(k, n) is None for k, n in kinds),
        timeout=WAIT,
    )
    assert wait_slurm(rest, job_id, lambda j: j.is_terminal).state == "CANCELLED"
    assert [j.job_id for j in slurm_jobs_of(rest, uid)] == [job_id]
    squeue = chain.rig.slurm.run("squeue", "-h", "-o", "%i %T").stdout.split("\n")
    assert not [line for line in squeue if line.startswith(f"{job_id} ")], squeue
    chain.cluster.wait("every rank to exit", lambda: not processes_mentioning(marker), timeout=60)
    keys = chain.store.list_prefix(out_uri)
    assert not [k for k in keys if k.endswith("_SUCCESS")], keys


HOSTILE = ["$(touch {p})", "`touch {p}`", ";touch {p};", "'; touch {p}; '", '" && touch {p} "']


def test_hostile_output_uri_and_secrets_never_logged_across_a_full_run(
    chain: Chain, rest: SlurmRestClient, tmp_path: Path
) -> None:
    pwned = chain.rig.slurm.jobs_dir / f"pwned-{chain.cluster.ns}"
    evil = "".join(h.format(p=pwned) for h in HOSTILE)
    out_uri = f"s3://{chain.bucket}/runs/{evil}/"
    chain.cluster.create(chain.pipeline("evil", out_uri))
    chain.finish_stage_one("evil", out_uri, rows=3000)
    vp = chain.cluster.wait_phase("evil", "Succeeded", timeout=WAIT)

    # -- no injection: the words arrived verbatim and nothing ran ----------------------------
    sj = chain.cluster.must("slurmjob", "evil-kmeans")
    cmd = sj["spec"]["command"]
    assert cmd[cmd.index("--output") + 1] == f"{out_uri}clustering/"
    assert not pwned.exists()
    clustering = f"s3://{chain.bucket}/runs/{evil}/clustering/"
    keys = set(chain.store.list_prefix(clustering))
    for name in ("centroids.parquet", "metrics.json", "_SUCCESS"):
        assert f"{clustering}{name}" in keys, sorted(keys)
    assert vp["status"]["outputs"]["rows"] == 3000
    (job,) = slurm_jobs_of(rest, sj["metadata"]["uid"])
    assert job.state == "COMPLETED"

    # -- no secret anywhere but the Secret -----------------------------------------------------
    token, secret_key = chain.rig.token, chain.secret_key
    k = chain.cluster.k8s
    stored = json.loads(
        k.kubectl("get", "secret", "slurm-jwt", "-n", chain.cluster.ns, "-o", "json").stdout
    )
    assert stored["data"]["token"]  # the grep below looks for a token that is really in use
    places: dict[str, str] = {
        "operator log": chain.op.log.read_text(errors="replace"),
        **{f"bridge log {b.log.name}": b.log.read_text(errors="replace") for b in chain.rig.bridges},
        "events": k.kubectl("get", "events", "-n", chain.cluster.ns, "-o", "json").stdout,
        "objects": k.kubectl(
            "get", "vectorpipelines,rayjobs,slurmjobs,configmaps", "-n", chain.cluster.ns, "-o", "json"
        ).stdout,
    }  # fmt: skip
    slurm_dir = chain.rig.slurm.dir
    for log in sorted((slurm_dir / "logs").glob("*")):
        places[f"slurm {log.name}"] = log.read_text(errors="replace")
    job_out = slurm_dir / "jobs" / f"slurm-{job.job_id}.out"
    places["job output"] = job_out.read_text(errors="replace") if job_out.exists() else ""
    assert len(places["operator log"]) > 1000 and "evil" in places["bridge log bridge-0.log"]
    leaks = [
        (where, what)
        for where, text in places.items()
        for what, secret in (("JWT", token), ("S3 secret key", secret_key))
        if secret in text
    ]
    assert leaks == [], leaks
    print(
        f"secret grep: {len(places)} places, {sum(len(t) for t in places.values())} bytes, no leak"
    )
