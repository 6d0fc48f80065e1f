"""The `node` tier's cluster: hack/cluster/cluster.sh's one-node Kubernetes, and what pods reach.

`NodeCluster` starts the same cluster a user gets from `make cluster` (under
its own name and state directory), runs kubectl and helm against it through
the loopback API forwarder, and stops it. `NetnsServices` starts the S3 API and
Slurm inside the cluster's network namespace (tests/node/netns_services.py),
where pods reach them on the node's address, and forwards them to loopback for
the test's own checks. Nothing here fakes a part: every pod runs under the
kubelet and containerd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "hack" / "cluster" / "cluster.sh"
IMAGES_SH = REPO / "hack" / "cluster" / "images.sh"
FORWARD_PY = REPO / "hack" / "cluster" / "forward.py"
VENV_BIN = Path(sys.executable).parent


class NodeError(RuntimeError):
    """The cluster, or a service inside its namespace, did not come up."""


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise NodeError(
            f"{' '.join(argv)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc.stdout


@dataclass
class NodeCluster:
    name: str = field(default_factory=lambda: os.environ.get("VECTORPIPE_NODE_CLUSTER", "vptest"))
    env: dict[str, str] = field(default_factory=dict)

    @property
    def script_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "VECTORPIPE_CLUSTER_NAME": self.name,
            "VECTORPIPE_CLUSTER_DIR": f"/tmp/vectorpipe-cluster-{self.name}",
        }

    def up(self) -> NodeCluster:
        _run([str(IMAGES_SH), "build"], env=self.script_env)
        out = _run([str(CLUSTER_SH), "up"], env=self.script_env)
        exports = [line.removeprefix("export ") for line in out.splitlines()]
        self.env = dict(line.split("=", 1) for line in exports if line.startswith("VECTORPIPE_"))
        self.env["KUBECONFIG"] = next(
            line.split("=", 1)[1] for line in exports if line.startswith("KUBECONFIG=")
        )
        return self

    def down(self) -> None:
        if os.environ.get("VECTORPIPE_CLUSTER_KEEP") == "1":
            return  # for debugging: `hack/cluster/cluster.sh down` later
        subprocess.run([str(CLUSTER_SH), "down"], env=self.script_env, check=False, timeout=300)

    @property
    def dir(self) -> Path:
        return Path(self.env["VECTORPIPE_CLUSTER_DIR"])

    @property
    def kubeconfig(self) -> str:
        return self.env["KUBECONFIG"]

    @property
    def netns(self) -> str:
        return self.env["VECTORPIPE_CLUSTER_NETNS"]

    @property
    def node_ip(self) -> str:
        return self.env["VECTORPIPE_CLUSTER_NODE_IP"]

    @property
    def bin_dir(self) -> Path:
        return Path((self.dir / "bin-dir").read_text().strip())

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        argv = [str(self.bin_dir / "kubectl"), "--kubeconfig", self.kubeconfig, *args]
        if check:
            return _run(argv, timeout=timeout)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout).stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def helm(self, *args: str, timeout: float = 900) -> str:
        return _run(
            [str(self.bin_dir / "helm"), "--kubeconfig", self.kubeconfig, *args], timeout=timeout
        )

    def wait(self, what: str, predicate: Any, timeout: float, interval: float = 2.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    def log_tails(self, lines: int = 30) -> str:
        logs = self.dir / "logs"
        parts = []
        for log in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {log.name} -----\n" + "\n".join(text))
        return "\n".join(parts)


@dataclass
class NetnsServices:
    """S3 and Slurm inside the cluster's namespace, plus loopback forwards for the test."""

    cluster: NodeCluster
    info: dict[str, Any] = field(default_factory=dict)
    local: dict[str, str] = field(default_factory=dict)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, timeout: float = 180) -> NetnsServices:
        work = self.cluster.dir / "services"
        work.mkdir(exist_ok=True)
        ready, fwd_ready = work / "ready.json", work / "forward.ready"
        for stale in (ready, fwd_ready):
            stale.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        log = open(work / "services.log", "ab")  # noqa: SIM115 - the child owns it
        self._procs.append(
            subprocess.Popen(
                [
                    "nsenter",
                    f"--net={self.cluster.netns}",
                    "--",
                    sys.executable,
                    "-m",
                    "tests.node.netns_services",
                    "--host",
                    self.cluster.node_ip,
                    "--ready-file",
                    str(ready),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
            )
        )
        self._await(ready, timeout, work / "services.log")
        self.info = json.loads(ready.read_text())
        targets = [self.info["s3_endpoint"], self.info["rest_url"]]
        routes = [f"0={t.removeprefix('http://')}" for t in targets]
        self._procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(FORWARD_PY),
                    "--netns",
                    self.cluster.netns,
                    "--ready-file",
                    str(fwd_ready),
                    *routes,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        self._await(fwd_ready, 30, work / "services.log")
        ports = [line.split("=", 1)[0] for line in fwd_ready.read_text().split()]
        self.local = {
            "s3_endpoint": f"http://127.0.0.1:{ports[0]}",
            "rest_url": f"http://127.0.0.1:{ports[1]}",
        }
        return self

    def _await(self, path: Path, timeout: float, log: Path) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            dead = [p for p in self._procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                tail = log.read_text(errors="replace")[-6000:] if log.exists() else ""
                raise NodeError(f"services in {self.cluster.netns} did not start:\n{tail}")
            time.sleep(0.5)

    def stop(self) -> None:
        for p in reversed(self._procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self._procs.clear()

    def slurm_jobs(self, uid: str) -> list[Any]:
        """The Slurm jobs carrying a SlurmJob's UID, as slurmrestd reports them."""
        from slurm_bridge.client import SlurmRestClient, static_token
        from tests.support.bridge import slurm_jobs_of

        token = static_token(self.info["token"])
        with SlurmRestClient(self.local["rest_url"], "root", token) as rest:
            return list(slurm_jobs_of(rest, uid))

    def s3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.local["s3_endpoint"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
