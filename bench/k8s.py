"""Control-plane latency: the operator on a real kube-apiserver, slurm-bridge on slurmrestd.

Operator: the test suite's real control plane (tests/support/controlplane/) and
operator launcher (`start_operator` from tests/support/operator.py) are
imported, not copied. `pipelines` VectorPipelines go to the API server in one
`kubectl create` of a List; two `kubectl get --watch` streams timestamp when
each VectorPipeline and its RayJob first appear, and the difference is the
operator's reaction time. No KubeRay runs, so nothing else touches the
RayJobs. The operator's peak RSS is its VmHWM from /proc. slurm-bridge: the
product's `SlurmRestClient` submits trivial jobs to the real slurmrestd of
tests/services/slurm.py; each submit → job id round trip is timed.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.common import Json, Scale, log, percentile

REPO = Path(__file__).resolve().parents[1]


def _watch(
    kubectl: list[str], env: dict[str, str], kind: str, ns: str, seen: dict[str, float]
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*kubectl, "get", kind, "-n", ns, "--watch", "-o", "name"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            name = line.strip().rsplit("/", 1)[-1]
            seen.setdefault(name, time.monotonic())

    threading.Thread(target=pump, daemon=True).start()
    return proc


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def operator(scale: Scale, work: Path) -> Json:
    from tests.support.controlplane import ControlPlane, Toolchain
    from tests.support.operator import CRDS, pipeline, start_operator

    work.mkdir(parents=True, exist_ok=True)
    log("operator: starting the control plane")
    cp = ControlPlane(Toolchain.build())
    cp.start()
    op = None
    watchers: list[subprocess.Popen[str]] = []
    try:
        cp.apply_crds([*cp.toolchain.crds, *CRDS])
        ns = cp.create_namespace("bench")
        op = start_operator(cp, ns, work / "operator.log")
        idle_rss = _peak_rss_mb(op.proc.pid)
        kubectl = [str(cp.toolchain.binary("kubectl"))]
        vp_seen: dict[str, float] = {}
        rj_seen: dict[str, float] = {}
        watchers = [
            _watch(kubectl, cp.env, "vectorpipelines", ns, vp_seen),
            _watch(kubectl, cp.env, "rayjobs", ns, rj_seen),
        ]
        time.sleep(3.0)  # let both watches establish before anything is created
        names = [f"p{i:03d}" for i in range(scale.pipelines)]
        items = [pipeline(n, work / "out" / n) for n in names]
        log(f"operator: creating {len(names)} VectorPipelines at once")
        t0 = time.monotonic()
        cp.kubectl(
            "create",
            "-n",
            ns,
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )
        deadline = time.monotonic() + 300
        while len(rj_seen) < len(names) and time.monotonic() < deadline:
            time.sleep(0.2)
        missing = [n for n in names if f"{n}-etl" not in rj_seen]
        if missing:
            raise RuntimeError(
                f"{len(missing)} RayJobs never appeared, e.g. {missing[:3]}:\n{op.tail()}"
            )
        lat = [rj_seen[f"{n}-etl"] - vp_seen.get(n, t0) for n in names]
        all_done = max(rj_seen.values()) - t0
        peak = _peak_rss_mb(op.proc.pid)
    finally:
        for w in watchers:
            w.terminate()
            w.wait(10)
        if op is not None:
            op.stop()
        cp.stop()
    return {
        "pipelines": len(names),
        "operator_p50_s": percentile(lat, 50),
        "operator_p99_s": percentile(lat, 99),
        "operator_max_s": max(lat),
        "operator_all_rayjobs_s": all_done,
        "operator_rss_mb": peak,
        "operator_idle_rss_mb": idle_rss,
    }


def slurm(scale: Scale) -> Json:
    from slurm_bridge.client import JobRequest, SlurmRestClient, static_token
    from tests.services.slurm import LocalSlurm

    log("slurm-bridge: starting Slurm + slurmrestd")
    cluster = LocalSlurm()
    cluster.start()
    try:
        jobs = tempfile.mkdtemp(dir=cluster.jobs_dir)
        Path(jobs).chmod(0o1777)
        with SlurmRestClient(cluster.rest_url, "root", static_token(cluster.token("root"))) as rest:

            def submit() -> float:
                req = JobRequest(
                    script="#!/bin/bash\ntrue\n",
                    name="vp-bench",
                    comment=str(uuid.uuid4()),
                    ntasks=1,
                    nodes=1,
                    time_limit=1,
                    current_working_directory=jobs,
                    standard_output=f"{jobs}/%j.out",
                )
                t = time.perf_counter()
                job_id = rest.submit(req)
                took = time.perf_counter() - t
                if job_id <= 0:
                    raise RuntimeError(f"bad job id {job_id}")
                return took

            submit()  # version detection happens on the first call
            lat = [submit() for _ in range(scale.slurm_submits)]
            version = rest.version
    finally:
        cluster.stop()
    return {
        "slurm_rest_version": version,
        "slurm_submits": len(lat),
        "slurm_submit_p50_s": percentile(lat, 50),
        "slurm_submit_p99_s": percentile(lat, 99),
    }
