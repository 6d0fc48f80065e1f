"""The operator rig: start `python -m vectorpipe_operator` and drive VectorPipelines with kubectl.

`start_operator` runs the operator as a subprocess scoped to one namespace (the
returned `Operator` reads its metrics, stops or kills it, shows its log);
`Cluster` is kubectl in that namespace with JSON in and out, plus waits for a
phase or any predicate. `pipeline` builds a VectorPipeline body,
`commit_manifest` writes stage 1's manifest with the workloads' own writer (so a
test can play KubeRay's part), `condition` and `owner_of` read what the
operator wrote. The pytest fixtures built on these live in the test modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.support.controlplane import ControlPlane, free_ports
from tests.support.processes import ControllerProcess, http_ok
from vectorpipe_workloads.manifest import Manifest, ShardInfo, write_manifest
from vectorpipe_workloads.storage import Store

REPO = Path(__file__).resolve().parents[2]
CRDS = sorted((REPO / "charts" / "vectorpipe" / "crds").glob("vectorpipe.io_*.yaml"))
WAIT = 60.0


Operator = ControllerProcess


def start_operator(
    k8s: ControlPlane,
    namespace: str,
    log: Path,
    *,
    crash_after_create: str | None = None,
    extra_args: Sequence[str] = (),
) -> Operator:
    """The real operator on the real API server; `crash_after_create=KIND` makes it die
    right after creating that child (tests.support.crashing), before the status records it."""
    live_port, metrics_port = free_ports(2)
    liveness = f"http://127.0.0.1:{live_port}/healthz"
    entry = ["-m", "vectorpipe_operator"]
    if crash_after_create is not None:
        entry = ["-m", "tests.support.crashing", "operator", crash_after_create, "--"]
    cmd = [
        sys.executable, *entry,
        "--namespace", namespace,
        "--liveness", liveness,
        "--metrics-port", str(metrics_port), "--metrics-addr", "127.0.0.1",
        "--log-format", "json", "--verbose", *extra_args,
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=k8s.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    op = Operator(proc, log, liveness, f"http://127.0.0.1:{metrics_port}/metrics")
    deadline = time.monotonic() + WAIT
    while not http_ok(liveness):
        if proc.poll() is not None or time.monotonic() > deadline:
            op.stop()
            raise AssertionError(f"operator did not become live:\n{op.tail()}")
        time.sleep(0.3)
    return op


TERMINAL_PHASES = ("Succeeded", "Failed")


class _SettledElsewhereError(Exception):
    """The pipeline reached a terminal phase other than the one awaited."""


class Cluster:
    """kubectl in one namespace, with JSON in and out."""

    def __init__(self, k8s: ControlPlane, namespace: str) -> None:
        self.k8s, self.ns = k8s, namespace

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        res = self.k8s.kubectl(
            "create", "-n", self.ns, "-o", "json", "-f", "-", input=json.dumps(obj)
        )
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        res = self.k8s.kubectl("get", kind, name, "-n", self.ns, "-o", "json", check=False)
        if res.returncode != 0:
            assert "NotFound" in res.stderr, res.stderr
            return None
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def must(self, kind: str, name: str) -> dict[str, Any]:
        obj = self.get(kind, name)
        assert obj is not None, f"{kind} {name} not found"
        return obj

    def set_status(self, kind: str, name: str, status: dict[str, Any]) -> None:
        self.k8s.kubectl(
            "patch", kind, name, "-n", self.ns, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip

    def wait(self, what: str, fn: Callable[[], Any], timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

    def wait_phase(self, name: str, phase: str, timeout: float = WAIT) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get("vectorpipeline", name)
            now = (obj or {}).get("status", {}).get("phase")
            if now in TERMINAL_PHASES and now != phase:
                raise _SettledElsewhereError(now)  # it can never get there: report at once
            return obj if obj and now == phase else None

        try:
            out: dict[str, Any] = self.wait(f"{name} phase {phase}", check, timeout)
        except (AssertionError, _SettledElsewhereError):
            obj = self.get("vectorpipeline", name) or {}
            raise AssertionError(
                f"{name} never reached {phase}: {json.dumps(obj.get('status'), indent=1)}"
            ) from None
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        res = self.k8s.kubectl(
            "get", "events", "-n", self.ns, "-o", "json",
            f"--field-selector=involvedObject.name={name},involvedObject.kind=VectorPipeline",
        )  # fmt: skip
        items: list[dict[str, Any]] = json.loads(res.stdout)["items"]
        return items


def pipeline(name: str, out: Path, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": name},
        "spec": {
            "input": {"uri": str(out.parent / "reads") + "/"},
            "output": {"uri": str(out) + "/", "shards": 4},
            "ray": {"workers": {"replicas": 2, "cpu": "2", "memory": "4Gi"}},
            "hpc": {"slurm": {"nodes": 2, "ntasksPerNode": 2}, "app": {"clusters": 5, "seed": 7}},
        },
    }
    body["spec"].update(spec)
    return body


def commit_manifest(
    out: Path,
    rows: int = 1000,
    shards: int = 4,
    dim: int = 137,
    *,
    run: str = "",
    bytes_per_row: int = 64,
) -> None:
    """Commit a manifest as stage 1 would (for the run `run`; "" is accepted by any run)."""
    per = [rows // shards] * shards
    per[-1] += rows - sum(per)
    manifest = Manifest(
        format="parquet",
        dim=dim,
        rows=rows,
        embedding={"method": "kmer", "k": 4, "canonical": True},
        shards=[
            ShardInfo(f"part-{i:05d}.parquet", n, bytes_per_row * n) for i, n in enumerate(per)
        ],
        sources=[],
        schema={
            "read_id": "string",
            "sample": "string",
            "embedding": f"fixed_size_list<float>[{dim}]",
        },
        run=run,
    )
    write_manifest(Store(), str(out), manifest)


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == ctype:
            return dict(c)
    return {}


def owner_of(obj: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [
        (r["kind"], r["name"], r["uid"], r.get("controller", False))
        for r in obj["metadata"].get("ownerReferences", [])
    ]
