"""`ControlPlane`: a real, throw-away Kubernetes control plane for VectorPipe's tests.

It starts etcd, kube-apiserver (client-cert admin auth, Node+RBAC
authorization, service-account tokens), kube-controller-manager and
kube-scheduler as local processes on free loopback ports, from the binaries
that ``hack/k8s/build.sh`` builds out of Go modules (see `Toolchain` in
tools.py). It generates its own CA, serving/client certificates and
service-account key pair (pki.py), writes an admin kubeconfig that kubectl,
helm, the kubernetes Python client and Kopf can all use, and can optionally
add a kwok fake node (pods scheduled there turn Running without any container
runtime) and the real KubeRay operator running out-of-cluster (kuberay.py).
Everything lives in one temp dir, including one log file per component
(processes.py), and `stop()` kills the processes and removes it. This module
imports nothing from pytest so it also serves scripts and other harnesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.support.controlplane import kuberay, tools
from tests.support.controlplane.pki import Pki, write_kubeconfig, write_pki
from tests.support.controlplane.processes import (
    Components,
    api_get,
    start_apiserver,
    start_controller_manager,
    start_etcd,
    start_scheduler,
)
from tests.support.controlplane.tools import ControlPlaneError, Toolchain

# The first usable address of this range becomes the `kubernetes` Service IP,
# so it also goes into the serving certificate. It must not overlap kwok's
# default pod CIDR (10.0.0.0/24).
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler, for real.

    Use as ``with ControlPlane(Toolchain.build()) as cp: cp.kubectl("get", "ns")``
    or call `start()` / `stop()` yourself. Set VECTORPIPE_K8S_KEEP=1 to keep the
    temp dir (certs, kubeconfig, logs) after `stop()` for debugging.
    """

    def __init__(
        self,
        toolchain: Toolchain,
        *,
        service_cidr: str = DEFAULT_SERVICE_CIDR,
        workdir: Path | None = None,
    ) -> None:
        self.toolchain = toolchain
        self.service_cidr = service_cidr
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="vp-k8s-"))
        self.logs_dir = self.workdir / "logs"
        self.pki = Pki(self.workdir / "pki")
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.server = ""
        self.expected_version = toolchain.versions.get("K8S_VERSION", "")
        self.components = Components(self.workdir, self.logs_dir, at_exit=self.stop)

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 180.0) -> ControlPlane:
        """Start every core component and return once the cluster is usable.

        "Usable" means /readyz is ok, the controller-manager and scheduler are
        healthy, and the `default` ServiceAccount exists in `default` (which
        proves the controller-manager really reconciles).
        """
        deadline = time.monotonic() + timeout
        toolchain, components = self.toolchain, self.components
        try:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            write_pki(self.pki, self.service_cidr)
            etcd_url = start_etcd(components, toolchain, deadline)
            self.server = start_apiserver(
                components, toolchain, self.pki, etcd_url, self.service_cidr, deadline
            )
            write_kubeconfig(self.kubeconfig, self.server, self.pki, "admin")
            start_controller_manager(
                components, toolchain, self.pki, self.server, self.service_cidr, deadline
            )
            start_scheduler(components, toolchain, self.pki, self.server, deadline)
            components.wait(
                "default ServiceAccount (controller-manager reconciling)",
                lambda: (
                    self.kubectl(
                        "get", "serviceaccount", "default", "-n", "default", check=False
                    ).returncode
                    == 0
                ),
                deadline,
            )
        except BaseException as exc:
            report = self.log_tails()
            self.stop()
            if isinstance(exc, ControlPlaneError):
                raise ControlPlaneError(f"{exc}\n{report}") from exc
            raise
        return self

    def stop(self) -> None:
        """Terminate every process (newest first) and remove the temp dir."""
        if not self.components.procs and not self.workdir.exists():
            return  # already stopped (stop() also runs at interpreter exit)
        self.components.stop_all()
        if os.environ.get("VECTORPIPE_K8S_KEEP"):
            print(f"[controlplane] kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------ diagnostics
    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every component's log, for failure reports."""
        return self.components.log_tails(lines)

    def stop_component(self, name: str) -> None:
        """Terminate one component started by this object (e.g. kwok or KubeRay)."""
        self.components.stop(name)

    def restart_apiserver(self, down_for: float = 5.0, timeout: float = 120.0) -> None:
        """Stop kube-apiserver, keep it down `down_for` s, start it again on the same port.

        etcd keeps running, so every object survives, as when an API server is
        upgraded or crashes; clients see dropped watches and refused connections.
        """
        (proc,) = [p for p in self.components.procs if p.name == "kube-apiserver"]
        argv = [str(a) for a in proc.popen.args]  # type: ignore[union-attr]
        self.stop_component("kube-apiserver")
        time.sleep(down_for)
        self.components.spawn("kube-apiserver", argv)
        self.components.wait(
            "kube-apiserver /readyz after a restart",
            lambda: api_get(self.server, self.pki, "/readyz") == "ok",
            time.monotonic() + timeout,
            watch=("etcd", "kube-apiserver"),
        )

    def process_alive(self, name: str) -> bool:
        return self.components.alive(name)

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG, for subprocesses such as helm or Kopf."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    # ------------------------------------------------------------------ helpers
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster; raise on failure if check."""
        return tools.kubectl(
            self.toolchain, self.kubeconfig, *args, input=input, check=check, timeout=timeout
        )

    def helm(
        self, *args: str, check: bool = True, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned helm against this cluster, with its caches in the temp dir."""
        return tools.helm(
            self.toolchain,
            self.kubeconfig,
            self.workdir / "helm",
            self.env,
            *args,
            check=check,
            timeout=timeout,
        )

    def version(self) -> dict[str, str]:
        """GET /version from the API server."""
        data: dict[str, str] = json.loads(api_get(self.server, self.pki, "/version"))
        return data

    def apply_crds(self, paths: Iterable[Path | str], timeout: float = 120.0) -> list[str]:
        """Server-side apply CRD manifests and wait until each is Established.

        Server-side, because KubeRay's CRDs are over 1 MB and client-side apply
        would put a copy into the 256 KiB last-applied annotation and fail.
        Returns the CRD names.
        """
        names: list[str] = []
        for path in paths:
            res = self.kubectl(
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=vectorpipe-tests",
                "-o",
                "name",
                "-f",
                str(path),
                timeout=timeout,
            )
            names += [line.strip() for line in res.stdout.splitlines() if line.strip()]
        if names:
            self.kubectl(
                "wait",
                "--for=condition=Established",
                f"--timeout={int(timeout)}s",
                *names,
                timeout=timeout + 10,
            )
        return [n.split("/", 1)[-1] for n in names]

    def create_namespace(
        self, prefix: str = "test", wait_for_default_sa: bool = True, timeout: float = 60.0
    ) -> str:
        """Create a uniquely named namespace and return its name.

        By default it waits for the `default` ServiceAccount, because the
        ServiceAccount admission plugin rejects pods in a namespace until the
        controller-manager has created it.
        """
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        if wait_for_default_sa:
            self.components.wait(
                f"default ServiceAccount in {name}",
                lambda: (
                    self.kubectl(
                        "get", "serviceaccount", "default", "-n", name, check=False
                    ).returncode
                    == 0
                ),
                time.monotonic() + timeout,
            )
        return name

    def delete_namespace(self, name: str, wait: bool = False) -> None:
        self.kubectl(
            "delete",
            "namespace",
            name,
            "--ignore-not-found",
            f"--wait={str(wait).lower()}",
            timeout=180.0,
        )

    def wait_for(
        self, what: str, predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.5
    ) -> None:
        """Poll predicate until true; fail with component log tails otherwise."""
        self.components.wait(what, predicate, time.monotonic() + timeout, interval)

    # ---------------------------------------------------------- optional parts
    def start_kwok(self, node_name: str = "kwok-node-0", timeout: float = 60.0) -> str:
        """Run kwok and create one fake node (see kuberay.start_kwok); return its name."""
        return kuberay.start_kwok(self, node_name, timeout)

    def start_kuberay_operator(self, timeout: float = 60.0) -> None:
        """Run the real KubeRay operator out-of-cluster (see kuberay.start_kuberay_operator)."""
        kuberay.start_kuberay_operator(self, timeout)
