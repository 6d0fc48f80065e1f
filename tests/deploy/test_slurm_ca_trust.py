"""The slurm-bridge CA workaround of docs/eks.md works with the bridge's own client.

A VectorPipeline cannot name slurmrestd's CA, so charts/deploy/eks/
slurm-bridge-ca-patch.yaml mounts the CA into the bridge and points
SSL_CERT_FILE at it. These tests start a TLS server on loopback with a
certificate from a private CA (as post-install.sh makes on the head node) and
show that `SlurmRestClient` with default verification refuses it, and accepts it
once SSL_CERT_FILE names that CA, at the path the patch mounts it.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from slurm_bridge.client.rest import SlurmRestClient
from slurm_bridge.errors import SlurmUnavailable
from tests.deploy.support import EKS

OPENAPI = {
    "openapi": "3.0.2",
    "paths": {"/slurm/v0.0.42/ping": {}, "/slurm/v0.0.42/job/submit": {}},
}


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


class _OpenAPI(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(OPENAPI).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback signed by a fresh private CA: (URL, CA file)."""
    tmp = tmp_path_factory.mktemp("ca")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("vectorpipe test CA", ca_key, None, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("head-node", key, ca.subject, ca_key, ca=False)
    (tmp / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "server.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAPI)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", tmp / "ca.crt"
    server.shutdown()
    server.server_close()


def _client(url: str) -> SlurmRestClient:
    # verify=True: what the bridge passes for a SlurmJob without caBundleSecretRef.
    return SlurmRestClient(
        url, "vectorpipe", lambda: "token", verify=True, retries=0, validate_token=False, timeout=10
    )


def test_bridge_client_refuses_a_private_ca_by_default(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with _client(url) as client, pytest.raises(SlurmUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        client.detect_version()


def test_bridge_client_trusts_the_ca_that_ssl_cert_file_names(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    with _client(url) as client:
        assert client.detect_version() == "v0.0.42"


def test_patch_points_ssl_cert_file_at_the_mounted_ca() -> None:
    ops = yaml.safe_load((EKS / "slurm-bridge-ca-patch.yaml").read_text())
    (volume,) = [o["value"] for o in ops if o["path"].endswith("/volumes/-")]
    (mount,) = [o["value"] for o in ops if o["path"].endswith("/volumeMounts/-")]
    (env,) = [o["value"] for o in ops if o["path"].endswith("/env/-")]
    assert all(o["op"] == "add" for o in ops)
    assert mount["name"] == volume["name"] and mount["readOnly"] is True
    (item,) = volume["secret"]["items"]
    assert env == {"name": "SSL_CERT_FILE", "value": f"{mount['mountPath']}/{item['path']}"}
