"""post-install.sh: lint, what it would install (TLS only, JWT, units), idempotency.

`--dest-root` writes every file the head node would get into a directory and
does nothing else, so these tests read the real generated nginx config, systemd
units, slurm.conf edit, JWT key and certificates. The live test next door runs
them against a real slurmctld/slurmrestd.
"""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.parallelcluster.support import (
    POST_INSTALL,
    SECRET_ARN,
    VALIDATE,
    RenderFn,
    default_args,
    need_tool,
)

SCRIPTS = [POST_INSTALL, VALIDATE]
NGINX_CONF = "/etc/vectorpipe/slurmrestd-tls.nginx.conf"
REST_UNIT = "/etc/systemd/system/slurmrestd.service"
TLS_UNIT = "/etc/systemd/system/vectorpipe-slurmrestd-tls.service"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "set -euo pipefail" in script.read_text()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script: Path) -> None:
    shellcheck = need_tool("shellcheck", "shellcheck")
    proc = subprocess.run([shellcheck, "-x", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.faults
def test_only_tls_listens(render: RenderFn) -> None:
    r = render(*default_args("--allowed-cidr", "192.168.0.0/24"))
    nginx = r.text(NGINX_CONF)
    listens = re.findall(r"^\s*listen\s+([^;]+);", nginx, re.M)
    assert listens, nginx
    for listen in listens:
        assert re.search(r"\bssl\b", listen), f"non-TLS listener: {listen}"
    protocols = re.search(r"ssl_protocols\s+([^;]+);", nginx)
    assert protocols is not None and protocols.group(1).split() == ["TLSv1.2", "TLSv1.3"]
    # allow list = loopback + the given CIDRs, then deny everyone else.
    rules = re.findall(r"^\s*(allow|deny)\s+([^;]+);", nginx, re.M)
    assert rules == [
        ("allow", "127.0.0.1"),
        ("allow", "10.0.0.0/16"),
        ("allow", "192.168.0.0/24"),
        ("deny", "all"),
    ]
    assert re.search(r"server unix:/run/slurmrestd/slurmrestd\.socket;", nginx)
    assert "$http_x_slurm" not in nginx  # no header (token) in any log format

    unit = r.text(REST_UNIT)
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    argv = exec_start.split()
    assert argv[0].endswith("/slurmrestd")
    assert argv[1:3] == ["-a", "rest_auth/jwt"]  # JWT only: no rest_auth/local
    listeners = [a for a in argv[3:] if not a.startswith("-")]
    assert listeners == ["unix:/run/slurmrestd/slurmrestd.socket"], (
        "slurmrestd must not listen on TCP"
    )
    assert "Environment=SLURM_JWT=daemon" in unit
    assert re.search(r"^User=slurmrestd$", unit, re.M) and "RuntimeDirectoryMode=0700" in unit
    tls_unit = r.text(TLS_UNIT)
    assert re.search(r"^User=slurmrestd$", tls_unit, re.M)
    assert f"-c {NGINX_CONF}" in tls_unit

    # The script has no other way to put slurmrestd on the network.
    script = POST_INSTALL.read_text()
    assert not re.search(r"slurmrestd[^\n]*\s(0\.0\.0\.0|\[?::\]?|\*)?:\d+", script)
    assert not re.search(r"listen\s+[^;\n]*\d+\s*;", script.replace(" ssl;", ""))


def test_jwt_and_slurm_conf(render: RenderFn) -> None:
    r = render(*default_args())
    key = r.file("/var/spool/slurm.state/jwt_hs256.key")
    assert key.stat().st_size == 32 and mode(key) == 0o600
    inc = r.text("/opt/slurm/etc/vectorpipe_jwt.conf")
    assert "AuthAltTypes=auth/jwt" in inc.splitlines()
    assert "AuthAltParameters=jwt_key=/var/spool/slurm.state/jwt_hs256.key" in inc.splitlines()
    conf = r.text("/opt/slurm/etc/slurm.conf")
    assert conf.count("include /opt/slurm/etc/vectorpipe_jwt.conf") == 1
    # ParallelCluster's own includes are untouched and still come first.
    assert conf.index("include slurm_parallelcluster.conf") < conf.index("vectorpipe_jwt.conf")
    env = r.text("/etc/vectorpipe/slurmrestd.env")
    assert f"SECRET_ID={SECRET_ARN}" in env and "TOKEN_USER=vectorpipe" in env
    assert mode(r.file("/etc/vectorpipe/slurmrestd.env")) == 0o600
    timer = r.text("/etc/systemd/system/vectorpipe-slurm-token.timer")
    assert "OnUnitActiveSec=43200s" in timer  # half of the default 86400 s lifespan
    service = r.text("/etc/systemd/system/vectorpipe-slurm-token.service")
    assert "ExecStart=/usr/local/sbin/vectorpipe-slurmrestd rotate" in service
    installed = r.file("/usr/local/sbin/vectorpipe-slurmrestd")
    assert installed.read_text() == POST_INSTALL.read_text() and mode(installed) == 0o755


def test_rerun_is_idempotent(render: RenderFn) -> None:
    first = render(*default_args())
    key = first.file("/var/spool/slurm.state/jwt_hs256.key").read_bytes()
    ca = first.text("/etc/vectorpipe/tls/ca.crt")
    cert = first.text("/etc/vectorpipe/tls/server.crt")
    assert "0 file(s) changed" not in first.proc.stderr
    second = render(*default_args())
    assert "done: 0 file(s) changed" in second.proc.stderr, second.proc.stderr
    assert second.file("/var/spool/slurm.state/jwt_hs256.key").read_bytes() == key
    assert second.text("/etc/vectorpipe/tls/ca.crt") == ca
    assert second.text("/etc/vectorpipe/tls/server.crt") == cert
    assert second.text("/opt/slurm/etc/slurm.conf").count("vectorpipe_jwt.conf") == 1
    # A new name for the certificate reissues it (same CA), nothing else.
    third = render(*default_args("--tls-san", "slurm.example.internal"))
    assert third.text("/etc/vectorpipe/tls/ca.crt") == ca
    assert third.text("/etc/vectorpipe/tls/server.crt") != cert
    assert third.file("/var/spool/slurm.state/jwt_hs256.key").read_bytes() == key


def test_slurmdbd_conf_gets_the_include_when_accounting_is_on(render: RenderFn) -> None:
    r = render(*default_args())
    dbd = r.file("/opt/slurm/etc/slurmdbd.conf")
    assert not dbd.exists()
    dbd.write_text(
        "AuthType=auth/munge\nDbdPort=6819\ninclude slurm_parallelcluster_slurmdbd.conf\n"
    )
    render(*default_args())
    render(*default_args())
    assert dbd.read_text().count("include /opt/slurm/etc/vectorpipe_jwt.conf") == 1


def test_certificates(render: RenderFn) -> None:
    openssl = need_tool("openssl", "openssl")
    r = render(*default_args("--tls-san", "slurm.example.internal", "--tls-san", "10.9.8.7"),
               env={"VP_RENDER_IP": "10.0.3.4", "VP_RENDER_FQDN": "ip-10-0-3-4.ec2.internal"})  # fmt: skip
    tls = r.file("/etc/vectorpipe/tls")
    verify = subprocess.run(
        [openssl, "verify", "-CAfile", str(tls / "ca.crt"), str(tls / "server.crt")],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = subprocess.run(
        [openssl, "x509", "-in", str(tls / "server.crt"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for san in ("IP Address:10.0.3.4", "IP Address:127.0.0.1", "DNS:ip-10-0-3-4.ec2.internal",
                "DNS:slurm.example.internal", "IP Address:10.9.8.7"):  # fmt: skip
        assert san in text, san
    assert "CA:FALSE" in text and "TLS Web Server Authentication" in text
    assert mode(tls / "ca.key") == 0o600
    assert mode(tls / "server.key") == 0o640  # root:slurmrestd on the head node
    assert not (tls / "server.csr").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--secret-id", SECRET_ARN, "--allowed-cidr", "10.0.0.0/16"], "--user is required"),
        (default_args("--allowed-cidr", "0.0.0.0/0; deny all"), "is not an IPv4 CIDR"),
        (default_args("--allowed-cidr", "300.0.0.0/8"), "is not an IPv4 CIDR"),
        (["--user", "Root;id", "--secret-id", SECRET_ARN], "not a valid user name"),
        (default_args("--tls-san", "a b"), "not a DNS name"),
        (default_args("--port", "80"), "--port must be"),
        (default_args("--lifespan", "60"), "--lifespan must be"),
        (default_args("--uid", "0"), "--uid must be"),
        (["--user", "vectorpipe", "--allowed-cidr", "10.0.0.0/16"], "--secret-id is required"),
        (default_args("--bogus"), "unknown argument"),
    ],
)
def test_bad_arguments_are_refused(render: RenderFn, args: list[str], message: str) -> None:
    r = render(*args, check=False)
    assert r.proc.returncode != 0
    assert message in r.proc.stderr, r.proc.stderr


def test_a_foreign_auth_alt_setting_is_refused(render: RenderFn) -> None:
    """JWT configured elsewhere (e.g. CustomSlurmSettings) is reported, not doubled."""
    r = render(*default_args())  # creates the tree
    conf = r.file("/opt/slurm/etc/slurm.conf")
    conf.write_text(conf.read_text().replace("include /opt/slurm/etc/vectorpipe_jwt.conf", ""))
    custom = r.file("/opt/slurm/etc/pcluster/custom_slurm_settings_include_file_slurm.conf")
    custom.write_text("AuthAltTypes=auth/jwt\n")
    again = render(*default_args(), check=False)
    assert again.proc.returncode != 0
    assert "already set in" in again.proc.stderr


def test_compute_nodes_only_get_the_user(render: RenderFn) -> None:
    r = render("--user", "vectorpipe", "--node-type", "ComputeFleet")
    assert "only the user is needed" in r.proc.stderr
    assert not r.file("/etc").exists()
    assert "vectorpipe_jwt" not in r.text("/opt/slurm/etc/slurm.conf")


@pytest.mark.faults
def test_rotation_keeps_the_token_off_argv_and_logs() -> None:
    """Static guarantees of `rotate` (the live test runs it for real)."""
    body = POST_INSTALL.read_text().split("\nrotate() {", 1)[1].split("\n}\n", 1)[0]
    assert '--secret-string "file://' in body
    assert "--rawfile token" in body
    assert "--arg token" not in body and '--secret-string "$' not in body
    assert "umask 077" in body
    logs = [line for line in body.splitlines() if re.match(r"\s*(log|echo|printf)\b", line)]
    assert logs and not any("token" in line.split('"')[0] or "$out" in line for line in logs)
