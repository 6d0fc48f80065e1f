"""The control plane's processes: start, health-check and stop each component.

`Components` owns every process one control plane started (the four core
components here, kwok and KubeRay from kuberay.py): it spawns each with its
own log file, polls a readiness predicate while failing early when a watched
process dies, terminates them (SIGTERM, then SIGKILL) and shows their log
tails. `start_etcd`, `start_apiserver`, `start_controller_manager` and
`start_scheduler` hold each core component's command line and the health
check that says it is up. Everything binds free loopback ports
(`free_ports`).
"""

from __future__ import annotations

import atexit
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.controlplane.pki import Pki, write_kubeconfig
from tests.support.controlplane.tools import ControlPlaneError, Toolchain


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


def free_ports(count: int) -> list[int]:
    """Distinct free loopback TCP ports.

    All sockets are held open until every port is chosen so one call never
    returns the same port twice; the window between closing and the component
    binding is small enough for a test machine.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def http_ok(url: str, insecure: bool = False) -> bool:
    # The controller-manager and scheduler serve /healthz over HTTPS with a
    # certificate they generate themselves, so it cannot be verified.
    ctx = ssl._create_unverified_context() if insecure else None
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def api_get(server: str, pki: Pki, path: str, timeout: float = 10.0) -> str:
    """GET `path` from the API server as the admin client."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.cert("admin")), str(pki.key("admin")))
    with urllib.request.urlopen(server + path, context=ctx, timeout=timeout) as r:
        body: bytes = r.read()
        return body.decode()


class Components:
    """The processes of one control plane, newest last, each with a log in `logs_dir`."""

    def __init__(self, workdir: Path, logs_dir: Path, at_exit: Callable[[], None]) -> None:
        self.workdir, self.logs_dir = workdir, logs_dir
        self.procs: list[Process] = []
        self._at_exit = at_exit
        self._atexit_registered = False

    def spawn(self, name: str, cmd: Sequence[str], env: Mapping[str, str] | None = None) -> Process:
        log = self.logs_dir / f"{name}.log"
        with open(log, "ab") as fh:
            popen = subprocess.Popen(
                list(cmd),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=dict(env) if env is not None else None,
            )
        proc = Process(name, popen, log)
        if not self._atexit_registered:
            self._atexit_registered = True
            # A runner that exits without calling stop() still takes the
            # components with it. They share its process group on purpose, so
            # Ctrl-C in a terminal reaches them too.
            atexit.register(self._at_exit)
        self.procs.append(proc)
        return proc

    def wait(
        self,
        what: str,
        predicate: Callable[[], bool],
        deadline: float,
        interval: float = 0.5,
        watch: Sequence[str] | None = None,
    ) -> None:
        """Poll until predicate() is true; fail early if a watched process died."""
        watched = [p for p in self.procs if watch is None or p.name in watch]
        last_error = ""
        while True:
            for proc in watched:
                code = proc.popen.poll()
                if code is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited with code {code} while waiting for {what}\n"
                        f"{tail(proc.log, 40)}"
                    )
            try:
                if predicate():
                    return
            except Exception as exc:  # the thing is not up yet; keep the reason
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"timed out waiting for {what} ({last_error or 'not ready'})"
                )
            time.sleep(interval)

    @staticmethod
    def terminate(proc: Process) -> None:
        if proc.popen.poll() is not None:
            return
        # SIGTERM first so the API server and etcd shut down cleanly; the
        # components start no children of their own, so the pid is enough.
        proc.popen.terminate()
        try:
            proc.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(timeout=10)

    def stop_all(self) -> None:
        """Terminate every process, newest first."""
        for proc in reversed(self.procs):
            self.terminate(proc)
        self.procs.clear()

    def stop(self, name: str) -> None:
        """Terminate every process called `name`."""
        for proc in [p for p in self.procs if p.name == name]:
            self.terminate(proc)
            self.procs.remove(proc)

    def alive(self, name: str) -> bool:
        return any(p.name == name and p.popen.poll() is None for p in self.procs)

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every component's log, for failure reports."""
        parts = []
        for log in sorted(self.logs_dir.glob("*.log")):
            parts.append(f"----- {log.name} (last {lines} lines) -----\n{tail(log, lines)}")
        return "\n".join(parts)


def start_etcd(components: Components, toolchain: Toolchain, deadline: float) -> str:
    """Start etcd with its data under the workdir; return its client URL once healthy."""
    client_port, peer_port = free_ports(2)
    etcd_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    components.spawn(
        "etcd",
        [
            str(toolchain.binary("etcd")),
            "--name=vectorpipe-test",
            f"--data-dir={components.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=vectorpipe-test={peer_url}",
            # Test data is disposable; skipping fsync makes every write much
            # cheaper on slow CI disks.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )
    components.wait(
        "etcd /health",
        lambda: http_ok(f"{etcd_url}/health"),
        deadline,
        watch=("etcd",),
    )
    return etcd_url


def start_apiserver(
    components: Components,
    toolchain: Toolchain,
    pki: Pki,
    etcd_url: str,
    service_cidr: str,
    deadline: float,
) -> str:
    """Start kube-apiserver on a free port; return its URL once /readyz is ok."""
    (port,) = free_ports(1)
    server = f"https://127.0.0.1:{port}"
    workdir = components.workdir
    components.spawn(
        "kube-apiserver",
        [
            str(toolchain.binary("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.cert('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={service_cidr}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--requestheader-client-ca-file={pki.cert('front-proxy-ca')}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.cert('front-proxy-client')}",
            f"--proxy-client-key-file={pki.key('front-proxy-client')}",
            "--allow-privileged=true",
            # The default reconciler would publish 127.0.0.1 as the endpoint of
            # the `kubernetes` Service, which the API validation rejects (loopback),
            # logging errors forever; no pod here ever dials that Service.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ],
    )
    components.wait(
        "kube-apiserver /readyz",
        lambda: api_get(server, pki, "/readyz") == "ok",
        deadline,
        watch=("etcd", "kube-apiserver"),
    )
    return server


def start_controller_manager(
    components: Components,
    toolchain: Toolchain,
    pki: Pki,
    server: str,
    service_cidr: str,
    deadline: float,
) -> None:
    """Start kube-controller-manager as its own client identity; wait for /healthz."""
    workdir = components.workdir
    kubeconfig = workdir / "controller-manager.kubeconfig"
    write_kubeconfig(kubeconfig, server, pki, "controller-manager")
    (port,) = free_ports(1)
    components.spawn(
        "kube-controller-manager",
        [
            str(toolchain.binary("kube-controller-manager")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'controller-manager-certs'}",
            "--leader-elect=false",
            # Root CA for the kube-root-ca.crt ConfigMaps and the SA signing key
            # for token Secrets: together they make in-cluster SA credentials work.
            f"--root-ca-file={pki.ca_cert}",
            f"--service-account-private-key-file={pki.sa_key}",
            # Each controller acts as its own ServiceAccount, so RBAC applies to
            # controllers exactly as it does in a real cluster.
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={service_cidr}",
            "--controllers=*",
        ],
    )
    components.wait(
        "kube-controller-manager /healthz",
        lambda: http_ok(f"https://127.0.0.1:{port}/healthz", insecure=True),
        deadline,
        watch=("kube-apiserver", "kube-controller-manager"),
    )


def start_scheduler(
    components: Components, toolchain: Toolchain, pki: Pki, server: str, deadline: float
) -> None:
    """Start kube-scheduler as its own client identity; wait for /healthz."""
    workdir = components.workdir
    kubeconfig = workdir / "scheduler.kubeconfig"
    write_kubeconfig(kubeconfig, server, pki, "scheduler")
    (port,) = free_ports(1)
    components.spawn(
        "kube-scheduler",
        [
            str(toolchain.binary("kube-scheduler")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'scheduler-certs'}",
            "--leader-elect=false",
        ],
    )
    components.wait(
        "kube-scheduler /healthz",
        lambda: http_ok(f"https://127.0.0.1:{port}/healthz", insecure=True),
        deadline,
        watch=("kube-apiserver", "kube-scheduler"),
    )
