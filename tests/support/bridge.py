"""The slurm-bridge rig: start `python -m slurm_bridge` and drive SlurmJobs with kubectl.

`Rig` owns one namespace against the real kube-apiserver and one real Slurm:
it holds a root JWT from the local slurmctld (`secret` puts it into a Secret),
starts bridge processes scoped to the namespace with short poll and backoff
intervals (`start_bridge`; each a `Bridge` whose metrics and log a test can
read), creates SlurmJobs and waits on their status, Events or gone-ness,
counts the writes to one with a watch (`writes_during`), and reads a job's
output file. `cond` picks a condition out of a status;
`slurm_jobs_of` and `wait_slurm` look at Slurm itself through a separate REST
client. The pytest fixtures built on these live in the test modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from slurm_bridge.client import JobInfo, SlurmRestClient
from tests.services.slurm import LocalSlurm
from tests.support.controlplane import ControlPlane, free_ports
from tests.support.processes import ControllerProcess, http_ok

REPO = Path(__file__).resolve().parents[2]
WAIT = 90.0
VENV_BIN = str(Path(sys.executable).parent)


# -- the bridge process ---------------------------------------------------------------------
Bridge = ControllerProcess


class Rig:
    """The namespace, the bridge processes started in it, and kubectl helpers."""

    def __init__(self, k8s: ControlPlane, slurm: LocalSlurm, ns: str, tmp: Path) -> None:
        self.k8s, self.slurm, self.ns, self.tmp = k8s, slurm, ns, tmp
        self.bridges: list[Bridge] = []
        self.token = slurm.token("root", lifespan=3600)

    # bridge ------------------------------------------------------------------------------
    def start_bridge(
        self,
        *,
        wait_live: bool = True,
        env: dict[str, str] | None = None,
        crash_after_submit: bool = False,
    ) -> Bridge:
        """The real bridge; `crash_after_submit` makes it die right after a successful
        submit (tests.support.crashing), before the job id reaches the status."""
        live_port, metrics_port = free_ports(2)
        liveness = f"http://127.0.0.1:{live_port}/healthz"
        entry = ["-m", "slurm_bridge"]
        if crash_after_submit:
            entry = ["-m", "tests.support.crashing", "bridge", "--"]
        cmd = [
            sys.executable, *entry, "--namespace", self.ns,
            "--liveness", liveness, "--metrics-port", str(metrics_port), "--metrics-addr", "127.0.0.1",
            "--poll-interval", "1", "--max-backoff", "4", "--delete-backoff", "3",
            "--slurm-timeout", "10", "--slurm-conf", str(self.slurm.conf_path),
            "--mpirun-allow-run-as-root", "--default-workdir", str(self.slurm.jobs_dir),
            "--job-env", f"PATH={VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "--log-format", "plain", "--verbose",
        ]  # fmt: skip
        log = self.tmp / f"bridge-{len(self.bridges)}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                env={**self.k8s.env, **(env or {})},
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        bridge = Bridge(proc, log, liveness, f"http://127.0.0.1:{metrics_port}/metrics")
        self.bridges.append(bridge)
        deadline = time.monotonic() + WAIT
        while wait_live and not http_ok(liveness):
            if proc.poll() is not None or time.monotonic() > deadline:
                bridge.stop()
                raise AssertionError(f"the bridge did not become live:\n{bridge.tail()}")
            time.sleep(0.3)
        return bridge

    # kubectl ----------------------------------------------------------------------------------
    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.k8s.kubectl(*args, "-n", self.ns, **kw)

    def secret(self, name: str, token: str, key: str = "token") -> None:
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {key: token},
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def create(self, name: str, **spec: Any) -> dict[str, Any]:
        spec.setdefault(
            "slurm",
            {
                "endpoint": self.slurm.rest_url,
                "tokenSecretRef": {"name": "slurm-jwt"},
                "user": "root",
            },
        )
        spec.setdefault("output", f"{self.slurm.jobs_dir}/{self.ns}-{name}-%j.out")
        spec.setdefault("timeLimit", "5")
        obj = {
            "apiVersion": "vectorpipe.io/v1alpha1",
            "kind": "SlurmJob",
            "metadata": {"name": name},
            "spec": spec,
        }
        res = self.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(obj))
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def get(self, name: str) -> dict[str, Any] | None:
        res = self.kubectl("get", "slurmjob", name, "-o", "json", check=False)
        if res.returncode != 0:
            assert "NotFound" in res.stderr, res.stderr
            return None
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def status(self, name: str) -> dict[str, Any]:
        obj = self.get(name)
        assert obj is not None, f"SlurmJob {name} is gone"
        return dict(obj.get("status") or {})

    def wait(
        self, name: str, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.status(name)
            if pred(last):
                return last
            time.sleep(0.3)
        raise AssertionError(f"SlurmJob {name}: no {what} within {timeout}s; status: {last}")

    def wait_phase(self, name: str, phase: str, timeout: float = WAIT) -> dict[str, Any]:
        return self.wait(name, lambda s: s.get("phase") == phase, f"phase {phase}", timeout)

    def wait_gone(self, name: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while self.get(name) is not None:
            assert time.monotonic() < deadline, f"SlurmJob {name} still exists after {timeout}s"
            time.sleep(0.3)

    def events(self, name: str) -> list[tuple[str, str]]:
        res = self.kubectl(
            "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
        )
        items = sorted(
            json.loads(res.stdout)["items"], key=lambda e: e["metadata"]["creationTimestamp"]
        )
        return [(e["reason"], e.get("message", "")) for e in items]

    def wait_event(self, name: str, reason: str, timeout: float = 30.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events(name)
            if reason in [r for r, _ in events] or time.monotonic() > deadline:
                return events
            time.sleep(0.5)

    def writes_during(self, name: str, seconds: int) -> list[dict[str, Any]]:
        """Every write to SlurmJob `name` in the next `seconds`, as a watch sees them.

        Each write (status, finalizer, annotation) is one MODIFIED event. The
        watch starts from the listing's resourceVersion, handed back to the
        API server as the opaque token it is, so no write between the listing
        and the watch is missed. Returns the objects as written, oldest first.
        """
        api = config.new_client_from_config(config_file=str(self.k8s.kubeconfig))
        try:
            custom = client.CustomObjectsApi(api)
            args = ("vectorpipe.io", "v1alpha1", self.ns, "slurmjobs")
            selector = f"metadata.name={name}"
            listing = custom.list_namespaced_custom_object(*args, field_selector=selector)
            assert [i["metadata"]["name"] for i in listing["items"]] == [name], listing
            writes: list[dict[str, Any]] = []
            for event in watch.Watch().stream(
                custom.list_namespaced_custom_object,
                *args,
                field_selector=selector,
                resource_version=listing["metadata"]["resourceVersion"],
                timeout_seconds=seconds,
            ):
                assert event["type"] != "ERROR", event
                if event["type"] == "MODIFIED":
                    writes.append(event["object"])
            return writes
        finally:
            api.close()

    def output(self, name: str, job_id: int) -> str:
        return (self.slurm.jobs_dir / f"{self.ns}-{name}-{job_id}.out").read_text()


def cond(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), {})


def slurm_jobs_of(rest: SlurmRestClient, uid: str) -> list[JobInfo]:
    return sorted((j for j in rest.list_jobs() if uid in j.comment), key=lambda j: j.job_id)


def wait_slurm(
    rest: SlurmRestClient, job_id: int, pred: Callable[[JobInfo], bool], timeout: float = WAIT
) -> JobInfo:
    deadline = time.monotonic() + timeout
    info = None
    while time.monotonic() < deadline:
        info = rest.get_job(job_id)
        if info is not None and pred(info):
            return info
        time.sleep(0.3)
    raise AssertionError(f"Slurm job {job_id}: condition not met in {timeout}s; last {info}")
