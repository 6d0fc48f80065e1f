"""The head-node stack post-install.sh generates, run for real on loopback.

A real Slurm (Debian's slurmctld/slurmd with JWT, `tests.services.slurm`), then
slurmrestd started exactly as the generated systemd unit says (JWT only, unix
socket only, SLURM_JWT=daemon, as an unprivileged user) and nginx started with
the generated config and certificates, as that same user. Only paths are
rewritten into a temporary directory, the user is the test cluster's
unprivileged REST user, and nginx binds 127.0.0.1 instead of 0.0.0.0. Then:
the bridge's own client works over verified TLS, plain HTTP, old TLS, a wrong
CA, a missing token and a source address outside the allow list are all
refused, slurmrestd holds no TCP listener, and `post-install.sh rotate` puts a
working token into a real Secrets Manager API (moto on loopback) with the AWS
CLI, never logging it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from slurm_bridge.client import SlurmRestClient
from tests.parallelcluster.support import POST_INSTALL, need_tool
from tests.services.s3 import LocalS3
from tests.services.slurm import LocalSlurm, free_port

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SECRET_NAME = "vectorpipe/slurm-jwt"


@dataclass
class Stack:
    slurm: LocalSlurm
    dir: Path  # everything rendered and run lives here
    port: int
    procs: dict[str, subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.dir / "etc/vectorpipe/tls/ca.crt"

    def ctx(self, cafile: Path | None = None) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(cafile or self.ca))

    def headers(self, user: str = "root") -> dict[str, str]:
        return {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": self.slurm.token(user)}

    def log(self, name: str) -> str:
        p = self.dir / "logs" / name
        return p.read_text(errors="replace")[-4000:] if p.exists() else ""


def _unit_value(unit: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit, re.M)


def _rewrite(text: str, base: Path, port: int) -> str:
    """Production paths -> the test directory; 0.0.0.0 -> 127.0.0.1."""
    for prod, local in (
        ("/run/slurmrestd", base / "run/slurmrestd"),
        ("/etc/vectorpipe/tls", base / "etc/vectorpipe/tls"),
        ("/var/log/vectorpipe", base / "logs"),
        ("/var/lib/vectorpipe-slurmrestd-tls", base / "state"),
        ("/run/vectorpipe-slurmrestd-tls", base / "run/tls"),
    ):
        text = text.replace(prod, str(local))
    return text.replace(f"listen 0.0.0.0:{port} ssl;", f"listen 127.0.0.1:{port} ssl;")


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not listen on {port}")


def _wait_path(path: Path, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        if path.exists():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not create {path}")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    nginx = need_tool("nginx", "nginx")
    slurmrestd = need_tool("slurmrestd", "slurmrestd")
    cluster = LocalSlurm()
    cluster.start()
    base = Path(tempfile.mkdtemp(prefix="vp-pc-live-"))
    base.chmod(0o755)  # the unprivileged user walks into it
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        port = free_port()
        render = subprocess.run(
            ["bash", str(POST_INSTALL), "--dest-root", str(base), "--user", "root",
             "--secret-id", SECRET_NAME, "--allowed-cidr", "127.0.0.2/32", "--port", str(port)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "VP_RENDER_IP": "127.0.0.1", "VP_RENDER_FQDN": "localhost"},
        )  # fmt: skip
        assert render.returncode == 0, render.stderr
        user = pwd.getpwnam(cluster.rest_user)
        for sub in ("run/slurmrestd", "run/tls", "state", "logs"):
            (base / sub).mkdir(parents=True, exist_ok=True)
            os.chown(base / sub, user.pw_uid, user.pw_gid)
        (base / "run/slurmrestd").chmod(0o700)  # RuntimeDirectoryMode=0700
        (base / "run").chmod(0o755)
        # server.key is root:slurmrestd 0640 on the head node.
        os.chown(base / "etc/vectorpipe/tls/server.key", 0, user.pw_gid)

        # slurmrestd exactly as the unit runs it.
        unit = _rewrite((base / "etc/systemd/system/slurmrestd.service").read_text(), base, port)
        (exec_start,) = _unit_value(unit, "ExecStart")
        argv = exec_start.split()
        argv[0] = slurmrestd
        # Debian's 22.05 also ships openapi/dbv0.0.38, which needs slurmdbd; the
        # test cluster has none, so load the same plugins its own slurmrestd does.
        argv[1:1] = ["-s", ",".join(cluster.openapi_plugins)]
        env = {"PATH": os.environ["PATH"]}
        for item in _unit_value(unit, "Environment"):
            k, v = item.split("=", 1)
            env[k] = v
        assert env.pop("SLURM_CONF").endswith("/slurm.conf")
        env["SLURM_CONF"] = str(cluster.conf_path)
        log = (base / "logs/slurmrestd.log").open("wb")
        procs["slurmrestd"] = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT,
            user=user.pw_uid, group=user.pw_gid, umask=0o077,
        )  # fmt: skip
        _wait_path(base / "run/slurmrestd/slurmrestd.socket", procs["slurmrestd"], "slurmrestd")

        # nginx with the generated config, as the same unprivileged user.
        conf = base / "nginx.conf"
        conf.write_text(
            _rewrite((base / "etc/vectorpipe/slurmrestd-tls.nginx.conf").read_text(), base, port)
        )
        check = subprocess.run(
            [nginx, "-q", "-t", "-c", str(conf)],
            capture_output=True,
            text=True,
            user=user.pw_uid,
            group=user.pw_gid,
        )
        assert check.returncode == 0, check.stderr
        procs["nginx"] = subprocess.Popen(
            [nginx, "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=(base / "logs/nginx.stderr").open("wb"),
            user=user.pw_uid, group=user.pw_gid,
        )  # fmt: skip
        _wait_port(port, procs["nginx"], "nginx")
        yield Stack(cluster, base, port, procs)
    finally:
        for proc in reversed(list(procs.values())):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_bridge_client_over_verified_tls(stack: Stack) -> None:
    token = stack.slurm.token("root")
    with SlurmRestClient(stack.url, "root", lambda: token, verify=str(stack.ca)) as client:
        assert client.detect_version().startswith("v0.0.")
        assert client.ping(), stack.log("slurmrestd.log")
        client.list_jobs()
    r = httpx.get(f"{stack.url}/openapi/v3", headers=stack.headers(), verify=stack.ctx())
    assert r.status_code == 200 and "openapi" in r.json()


@pytest.mark.faults
def test_refusals(stack: Stack) -> None:
    # No token: slurmrestd (JWT only) refuses; it answered through the proxy.
    r = httpx.get(f"{stack.url}/openapi/v3", verify=stack.ctx())
    assert r.status_code == 401, (r.status_code, r.text[:200])
    # Plain HTTP to the TLS port: nginx's 400, slurmrestd never sees it.
    r = httpx.get(f"http://127.0.0.1:{stack.port}/openapi/v3", headers=stack.headers())
    assert r.status_code == 400 and "HTTPS" in r.text
    # A server certificate not signed by the CA the client pins: no connection.
    other = ssl.create_default_context()
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{stack.url}/openapi/v3", verify=other)
    # TLS older than 1.2 is not offered.
    old = stack.ctx()
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.url}/openapi/v3", verify=old)


def _get_from(stack: Stack, source: str) -> int:
    transport = httpx.HTTPTransport(local_address=source, verify=stack.ctx())
    with httpx.Client(transport=transport) as c:
        return c.get(f"{stack.url}/openapi/v3", headers=stack.headers()).status_code


def test_allow_list(stack: Stack) -> None:
    assert _get_from(stack, "127.0.0.2") == 200  # --allowed-cidr 127.0.0.2/32
    assert _get_from(stack, "127.0.0.1") == 200  # loopback, for the head node's own checks
    assert _get_from(stack, "127.0.0.3") == 403  # everyone else


def _tcp_listen_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as fh:
            for line in fh.readlines()[1:]:
                f = line.split()
                if f[3] == "0A":  # LISTEN
                    inodes.add(f[9])
    return inodes


@pytest.mark.faults
def test_slurmrestd_has_no_tcp_listener(stack: Stack) -> None:
    pid = stack.procs["slurmrestd"].pid
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
            if m:
                sockets.add(m.group(1))
    assert sockets, "slurmrestd holds no socket at all?"
    assert not sockets & _tcp_listen_inodes(), "slurmrestd listens on TCP"


def _aws_env(s3: LocalS3, stack: Stack, venv: Path) -> dict[str, str]:
    return {
        **os.environ,
        **s3.env(),
        # Every AWS call of the CLI goes to the loopback server, whatever the service.
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": s3.endpoint_url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PATH": f"{venv}/bin:{os.environ['PATH']}",
        "SLURM_CONF": str(stack.slurm.conf_path),
        "VP_ENV_FILE": str(stack.dir / "rotate.env"),
        "VP_RUN_DIR": str(stack.dir / "run"),
    }


def test_rotate_stores_a_working_token(stack: Stack, s3: LocalS3, pcluster_venv: Path) -> None:
    import boto3

    sm: Any = boto3.client("secretsmanager", endpoint_url=s3.endpoint_url, region_name="us-east-1")
    with contextlib.suppress(sm.exceptions.ResourceExistsException):
        sm.create_secret(Name=SECRET_NAME, Description="test")
    # The generated env file, with Debian's Slurm prefix and the test's paths.
    rendered = (stack.dir / "etc/vectorpipe/slurmrestd.env").read_text()
    assert "SLURM_PREFIX=/opt/slurm" in rendered
    (stack.dir / "rotate.env").write_text(
        _rewrite(rendered, stack.dir, stack.port).replace(
            "SLURM_PREFIX=/opt/slurm", "SLURM_PREFIX=/usr"
        )
    )
    proc = subprocess.run(
        ["bash", str(POST_INSTALL), "rotate"],
        capture_output=True, text=True, timeout=120, env=_aws_env(s3, stack, pcluster_venv),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    secret = json.loads(sm.get_secret_value(SecretId=SECRET_NAME)["SecretString"])
    assert set(secret) == {"token", "ca_crt", "user", "endpoint", "expires"}
    assert secret["user"] == "root" and secret["endpoint"] == f"https://127.0.0.1:{stack.port}"
    assert secret["ca_crt"] == stack.ca.read_text()
    assert abs(secret["expires"] - (time.time() + 86400)) < 120
    token = secret["token"]
    assert token.count(".") == 2 and token not in proc.stderr + proc.stdout
    # The stored token and CA are all a client needs.
    ca = stack.dir / "from-secret-ca.crt"
    ca.write_text(secret["ca_crt"])
    with SlurmRestClient(secret["endpoint"], secret["user"], lambda: token, verify=str(ca)) as c:
        assert c.ping()
    # The private work directory is gone, nothing of the token stays on disk.
    assert not list((stack.dir / "run").glob("vectorpipe-token.*"))
