"""A real, throw-away Kubernetes control plane for VectorPipe's tests.

`ControlPlane` starts etcd, kube-apiserver (client-cert admin auth, Node+RBAC
authorization, service-account tokens), kube-controller-manager and
kube-scheduler as local processes on free loopback ports, from the binaries
that ``hack/k8s/build.sh`` builds out of Go modules (see `Toolchain`). It
generates its own CA, serving/client certificates and service-account key pair,
writes an admin kubeconfig that kubectl, helm, the kubernetes Python client and
Kopf can all use, and can optionally add a kwok fake node (pods scheduled there
turn Running without any container runtime) and the real KubeRay operator
running out-of-cluster. Everything lives in one temp dir, including one log file
per component, and `stop()` kills the processes and removes it. This module
imports nothing from pytest so it also serves scripts and other harnesses.
"""

from __future__ import annotations

import atexit
import base64
import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "k8s" / "build.sh"

# The first usable address of this range becomes the `kubernetes` Service IP,
# so it also goes into the serving certificate. It must not overlap kwok's
# default pod CIDR (10.0.0.0/24).
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


class ControlPlaneError(RuntimeError):
    """A component failed to start, died, or a kubectl call failed."""


@dataclass(frozen=True)
class Toolchain:
    """The build output of hack/k8s/build.sh: bin/, crds/, kwok-stages/, versions.env."""

    root: Path

    @classmethod
    def build(cls, script: Path = BUILD_SCRIPT, timeout: float = 3600.0) -> Toolchain:
        """Run the build script (a sub-second no-op when the cache is warm)."""
        # Output streams to our stderr so a cold 15-minute build shows progress
        # instead of looking hung; only the last stdout line (the bin dir) matters.
        proc = subprocess.run(
            ["bash", str(script)], stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"{script} failed with exit code {proc.returncode}")
        lines = proc.stdout.strip().splitlines()
        if not lines:
            raise ControlPlaneError(f"{script} printed no bin dir")
        return cls(Path(lines[-1]).parent)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def crds(self) -> list[Path]:
        """KubeRay's CRD manifests (ray.io_*.yaml), copied out of the Go module."""
        return sorted((self.root / "crds").glob("ray.io_*.yaml"))

    @property
    def kwok_stages(self) -> Path:
        return self.root / "kwok-stages"

    @property
    def versions(self) -> dict[str, str]:
        """The pinned versions, e.g. {'K8S_VERSION': 'v1.36.3', ...}."""
        out: dict[str, str] = {}
        for line in (self.root / "versions.env").read_text().splitlines():
            if "=" in line:
                key, _, value = line.partition("=")
                out[key.strip()] = value.strip()
        return out

    def binary(self, name: str) -> Path:
        path = self.bin / name
        if not os.access(path, os.X_OK):
            raise ControlPlaneError(f"{path} is missing: run hack/k8s/build.sh")
        return path


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class _Pki:
    """Paths of the generated key material (all PEM)."""

    dir: Path
    ca_cert: Path = field(init=False)
    ca_key: Path = field(init=False)
    sa_key: Path = field(init=False)
    sa_pub: Path = field(init=False)

    def __post_init__(self) -> None:
        self.ca_cert = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"
        self.sa_key = self.dir / "sa.key"
        self.sa_pub = self.dir / "sa.pub"

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"


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


def _new_key() -> rsa.RSAPrivateKey:
    # RSA rather than ECDSA: every component (and the SA token signer) accepts it.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    key: rsa.RSAPrivateKey,
    common_name: str,
    *,
    organizations: Sequence[str] = (),
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None,
    is_ca: bool = False,
    server_names: Sequence[str] = (),
    server_ips: Sequence[str] = (),
    client: bool = False,
) -> x509.Certificate:
    """Issue a certificate; self-signed when no issuer is given."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    subject = x509.Name(attrs)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    # Backdated an hour so small clock differences never make it "not yet valid".
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server_names or server_ips:
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


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
        self.pki = _Pki(self.workdir / "pki")
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.server = ""
        self.expected_version = toolchain.versions.get("K8S_VERSION", "")
        self._procs: list[_Process] = []
        self._etcd_url = ""
        self._atexit_registered = False

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
        try:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            self._write_pki()
            self._start_etcd(deadline)
            self._start_apiserver(deadline)
            self._start_controller_manager(deadline)
            self._start_scheduler(deadline)
            self._wait(
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
        if not self._procs and not self.workdir.exists():
            return  # already stopped (stop() also runs at interpreter exit)
        for proc in reversed(self._procs):
            self._terminate(proc)
        self._procs.clear()
        if os.environ.get("VECTORPIPE_K8S_KEEP"):
            print(f"[controlplane] kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _terminate(proc: _Process) -> None:
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

    # ------------------------------------------------------------ diagnostics
    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every component's log, for failure reports."""
        parts = []
        for log in sorted(self.logs_dir.glob("*.log")):
            parts.append(f"----- {log.name} (last {lines} lines) -----\n{_tail(log, lines)}")
        return "\n".join(parts)

    def stop_component(self, name: str) -> None:
        """Terminate one component started by this object (e.g. kwok or KubeRay)."""
        for proc in [p for p in self._procs if p.name == name]:
            self._terminate(proc)
            self._procs.remove(proc)

    def restart_apiserver(self, down_for: float = 5.0, timeout: float = 120.0) -> None:
        """Stop kube-apiserver, keep it down `down_for` s, start it again on the same port.

        etcd keeps running, so every object survives, as when an API server is
        upgraded or crashes; clients see dropped watches and refused connections.
        """
        (proc,) = [p for p in self._procs if p.name == "kube-apiserver"]
        argv = [str(a) for a in proc.popen.args]  # type: ignore[union-attr]
        self.stop_component("kube-apiserver")
        time.sleep(down_for)
        self._spawn("kube-apiserver", argv)
        self._wait(
            "kube-apiserver /readyz after a restart",
            lambda: self._api_get("/readyz") == "ok",
            time.monotonic() + timeout,
            watch=("etcd", "kube-apiserver"),
        )

    def process_alive(self, name: str) -> bool:
        return any(p.name == name and p.popen.poll() is None for p in self._procs)

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG, for subprocesses such as helm or Kopf."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    # ------------------------------------------------------------------ helpers
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster; raise on failure if check."""
        cmd = [str(self.toolchain.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        res = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and res.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} exited {res.returncode}:\n{res.stderr.strip()}"
            )
        return res

    def helm(
        self, *args: str, check: bool = True, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned helm against this cluster, with its caches in the temp dir."""
        helm_home = self.workdir / "helm"
        env = {
            **self.env,
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }
        cmd = [str(self.toolchain.binary("helm")), f"--kubeconfig={self.kubeconfig}", *args]
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if check and res.returncode != 0:
            raise ControlPlaneError(
                f"helm {' '.join(args)} exited {res.returncode}:\n{res.stderr.strip()}"
            )
        return res

    def version(self) -> dict[str, str]:
        """GET /version from the API server."""
        data: dict[str, str] = json.loads(self._api_get("/version"))
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
            self._wait(
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
        self._wait(what, predicate, time.monotonic() + timeout, interval)

    # ---------------------------------------------------------- optional parts
    def start_kwok(self, node_name: str = "kwok-node-0", timeout: float = 60.0) -> str:
        """Run kwok and create one fake node; return the node name.

        kwok does not schedule: kube-scheduler (always started) binds pods to
        the fake node, and kwok's stages then mark them Running/Ready and
        heartbeat the node lease so the node-lifecycle controller keeps it Ready.
        The node has no taint, so ordinary pods (e.g. KubeRay's) land on it.
        """
        stages = self.toolchain.kwok_stages
        stage_files = [
            *sorted((stages / "node" / "fast").glob("*.yaml")),
            *sorted((stages / "node" / "heartbeat-with-lease").glob("*.yaml")),
            *sorted((stages / "pod" / "fast").glob("*.yaml")),
        ]
        # kustomization.yaml files are not Stage objects.
        stage_files = [p for p in stage_files if p.name != "kustomization.yaml"]
        args = [
            f"--kubeconfig={self.kubeconfig}",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--node-lease-duration-seconds=40",
            *(f"--config={p}" for p in stage_files),
        ]
        # HOME points into the temp dir so kwok never picks up a ~/.kwok/kwok.yaml.
        self._spawn(
            "kwok",
            [str(self.toolchain.binary("kwok")), *args],
            env={**os.environ, "HOME": str(self.workdir)},
        )
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node_name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "status": {
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
            },
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(node))
        deadline = time.monotonic() + timeout
        self._wait(
            f"kwok node {node_name} Ready",
            lambda: self._node_ready(node_name),
            deadline,
            watch=("kwok",),
        )
        return node_name

    def start_kuberay_operator(self, timeout: float = 60.0) -> None:
        """Run the real KubeRay operator out-of-cluster against this cluster.

        KubeRay defines no kubeconfig flag itself (controller-runtime adds
        -kubeconfig); the KUBECONFIG environment variable is what both honour.
        Metrics and probes bind to free loopback ports, leader election is off
        (one replica, no Lease needed).
        """
        metrics_port, probe_port = free_ports(2)
        args = [
            f"--metrics-addr=127.0.0.1:{metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{probe_port}",
            "--enable-leader-election=false",
            "--log-stdout-encoder=console",
        ]
        self._spawn(
            "kuberay-operator",
            [str(self.toolchain.binary("kuberay-operator")), *args],
            env=self.env,
        )
        self._wait(
            "KubeRay operator /readyz",
            lambda: self._http_ok(f"http://127.0.0.1:{probe_port}/readyz"),
            time.monotonic() + timeout,
            watch=("kuberay-operator",),
        )

    # ---------------------------------------------------------------- internals
    def _write_pki(self) -> None:
        self.pki.dir.mkdir(parents=True, exist_ok=True)
        ca_key = _new_key()
        ca = _issue(ca_key, "vectorpipe-test-ca", is_ca=True)
        _write_key(self.pki.ca_key, ca_key)
        _write_cert(self.pki.ca_cert, ca)

        network = ipaddress.ip_network(self.service_cidr)
        kubernetes_service_ip = str(next(network.hosts()))
        serving_key = _new_key()
        serving = _issue(
            serving_key,
            "kube-apiserver",
            issuer=(ca, ca_key),
            server_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            server_ips=["127.0.0.1", kubernetes_service_ip],
        )
        _write_key(self.pki.key("apiserver"), serving_key)
        _write_cert(self.pki.cert("apiserver"), serving)

        # Client identities: the CN is the user name and O the groups; the
        # bootstrap RBAC policy already binds the two system users.
        clients = {
            "admin": ("vectorpipe-admin", ["system:masters"]),
            "controller-manager": ("system:kube-controller-manager", []),
            "scheduler": ("system:kube-scheduler", []),
        }
        for name, (cn, orgs) in clients.items():
            key = _new_key()
            _write_key(self.pki.key(name), key)
            _write_cert(
                self.pki.cert(name),
                _issue(key, cn, organizations=orgs, issuer=(ca, ca_key), client=True),
            )

        # A separate CA for the front proxy, as kubeadm does: the API server
        # publishes it in extension-apiserver-authentication, where the
        # controller-manager's and scheduler's delegated authentication expect
        # it (without it they log a CA-bundle error every few seconds), and
        # aggregated API servers would need it too.
        fp_ca_key = _new_key()
        fp_ca = _issue(fp_ca_key, "vectorpipe-test-front-proxy-ca", is_ca=True)
        _write_key(self.pki.key("front-proxy-ca"), fp_ca_key)
        _write_cert(self.pki.cert("front-proxy-ca"), fp_ca)
        fp_key = _new_key()
        _write_key(self.pki.key("front-proxy-client"), fp_key)
        _write_cert(
            self.pki.cert("front-proxy-client"),
            _issue(fp_key, "front-proxy-client", issuer=(fp_ca, fp_ca_key), client=True),
        )

        sa_key = _new_key()
        _write_key(self.pki.sa_key, sa_key)
        self.pki.sa_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _write_kubeconfig(self, path: Path, client: str) -> None:
        # JSON is valid YAML, and embedding the PEM data keeps the file usable
        # wherever it is copied (helm, the Python client, Kopf).
        def b64(p: Path) -> str:
            return base64.b64encode(p.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "vectorpipe-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": client,
                    "user": {
                        "client-certificate-data": b64(self.pki.cert(client)),
                        "client-key-data": b64(self.pki.key(client)),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "vectorpipe-test",
                    "context": {
                        "cluster": "vectorpipe-test",
                        "user": client,
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "vectorpipe-test",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)

    def _spawn(
        self, name: str, cmd: Sequence[str], env: Mapping[str, str] | None = None
    ) -> _Process:
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
        proc = _Process(name, popen, log)
        if not self._atexit_registered:
            self._atexit_registered = True
            # A runner that exits without calling stop() still takes the
            # components with it. They share its process group on purpose, so
            # Ctrl-C in a terminal reaches them too.
            atexit.register(self.stop)
        self._procs.append(proc)
        return proc

    def _wait(
        self,
        what: str,
        predicate: Callable[[], bool],
        deadline: float,
        interval: float = 0.5,
        watch: Sequence[str] | None = None,
    ) -> None:
        """Poll until predicate() is true; fail early if a watched process died."""
        watched = [p for p in self._procs if watch is None or p.name in watch]
        last_error = ""
        while True:
            for proc in watched:
                code = proc.popen.poll()
                if code is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited with code {code} while waiting for {what}\n"
                        f"{_tail(proc.log, 40)}"
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

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.cert("admin")), str(self.pki.key("admin")))
        return ctx

    def _api_get(self, path: str, timeout: float = 10.0) -> str:
        with urllib.request.urlopen(
            self.server + path, context=self._ssl_context(), timeout=timeout
        ) as r:
            body: bytes = r.read()
            return body.decode()

    @staticmethod
    def _http_ok(url: str, insecure: bool = False) -> bool:
        # The controller-manager and scheduler serve /healthz over HTTPS with a
        # certificate they generate themselves, so it cannot be verified.
        ctx = ssl._create_unverified_context() if insecure else None
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _node_ready(self, name: str) -> bool:
        res = self.kubectl("get", "node", name, "-o", "json", check=False)
        if res.returncode != 0:
            return False
        conditions = json.loads(res.stdout).get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _start_etcd(self, deadline: float) -> None:
        client_port, peer_port = free_ports(2)
        self._etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                str(self.toolchain.binary("etcd")),
                "--name=vectorpipe-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self._etcd_url}",
                f"--advertise-client-urls={self._etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=vectorpipe-test={peer_url}",
                # Test data is disposable; skipping fsync makes every write much
                # cheaper on slow CI disks.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(
            "etcd /health",
            lambda: self._http_ok(f"{self._etcd_url}/health"),
            deadline,
            watch=("etcd",),
        )

    def _start_apiserver(self, deadline: float) -> None:
        (port,) = free_ports(1)
        self.server = f"https://127.0.0.1:{port}"
        self._spawn(
            "kube-apiserver",
            [
                str(self.toolchain.binary("kube-apiserver")),
                f"--etcd-servers={self._etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={self.pki.cert('apiserver')}",
                f"--tls-private-key-file={self.pki.key('apiserver')}",
                f"--client-ca-file={self.pki.ca_cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={self.service_cidr}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.pki.sa_pub}",
                f"--service-account-signing-key-file={self.pki.sa_key}",
                f"--requestheader-client-ca-file={self.pki.cert('front-proxy-ca')}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={self.pki.cert('front-proxy-client')}",
                f"--proxy-client-key-file={self.pki.key('front-proxy-client')}",
                "--allow-privileged=true",
                # The default reconciler would publish 127.0.0.1 as the endpoint of
                # the `kubernetes` Service, which the API validation rejects (loopback),
                # logging errors forever; no pod here ever dials that Service.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        self._wait(
            "kube-apiserver /readyz",
            lambda: self._api_get("/readyz") == "ok",
            deadline,
            watch=("etcd", "kube-apiserver"),
        )
        self._write_kubeconfig(self.kubeconfig, "admin")

    def _start_controller_manager(self, deadline: float) -> None:
        kubeconfig = self.workdir / "controller-manager.kubeconfig"
        self._write_kubeconfig(kubeconfig, "controller-manager")
        (port,) = free_ports(1)
        self._spawn(
            "kube-controller-manager",
            [
                str(self.toolchain.binary("kube-controller-manager")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'controller-manager-certs'}",
                "--leader-elect=false",
                # Root CA for the kube-root-ca.crt ConfigMaps and the SA signing key
                # for token Secrets: together they make in-cluster SA credentials work.
                f"--root-ca-file={self.pki.ca_cert}",
                f"--service-account-private-key-file={self.pki.sa_key}",
                # Each controller acts as its own ServiceAccount, so RBAC applies to
                # controllers exactly as it does in a real cluster.
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={self.pki.ca_cert}",
                f"--cluster-signing-key-file={self.pki.ca_key}",
                f"--service-cluster-ip-range={self.service_cidr}",
                "--controllers=*",
            ],
        )
        self._wait(
            "kube-controller-manager /healthz",
            lambda: self._http_ok(f"https://127.0.0.1:{port}/healthz", insecure=True),
            deadline,
            watch=("kube-apiserver", "kube-controller-manager"),
        )

    def _start_scheduler(self, deadline: float) -> None:
        kubeconfig = self.workdir / "scheduler.kubeconfig"
        self._write_kubeconfig(kubeconfig, "scheduler")
        (port,) = free_ports(1)
        self._spawn(
            "kube-scheduler",
            [
                str(self.toolchain.binary("kube-scheduler")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
                "--leader-elect=false",
            ],
        )
        self._wait(
            "kube-scheduler /healthz",
            lambda: self._http_ok(f"https://127.0.0.1:{port}/healthz", insecure=True),
            deadline,
            watch=("kube-apiserver", "kube-scheduler"),
        )
