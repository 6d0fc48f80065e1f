"""The slurm-bridge trusts slurmrestd's private CA for the walkthrough pipeline's SlurmJob.

ParallelCluster's post-install signs slurmrestd's certificate with a private
CA; docs/eks.md, step 8, puts it into the token Secret (key ca.crt) and
charts/deploy/eks/pipeline-eks.yaml names it in spec.hpc.slurm.caBundleSecretRef.
These tests start a TLS server on loopback with a certificate from a fresh
private CA and show that the bridge's client with default verification refuses
it, and that the bridge's `Clients`, handed the SlurmJob the operator builds
from the walkthrough pipeline and reading that Secret from a real
kube-apiserver, trusts it; the same SlurmJob without the reference is refused.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from slurm_bridge.client.rest import SlurmRestClient
from slurm_bridge.errors import SlurmUnavailable
from tests.deploy.support import EKS, example_env, render_yaml_docs
from tests.support.controlplane import ControlPlane

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


def _jwt(lifetime: int = 3600) -> str:
    """An unsigned token shaped like slurmrestd's: the bridge checks only `exp`."""

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    exp = int(datetime.datetime.now(datetime.UTC).timestamp()) + lifetime
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'exp': exp, 'sun': 'vectorpipe'})}.sig"


@pytest.mark.k8s
def test_bridge_trusts_the_ca_the_walkthrough_pipeline_names(
    k8s: ControlPlane,
    namespace: str,
    tls_server: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubernetes import config

    from slurm_bridge.clients import Clients
    from slurm_bridge.k8s import Kube
    from slurm_bridge.options import Options
    from vectorpipe_api.slurmjob import SlurmJobSpec
    from vectorpipe_operator.builders import build_slurmjob
    from vectorpipe_operator.resources import Pipeline

    url, ca_file = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    env = {**example_env(), "PIPELINE_NAMESPACE": namespace, "SLURM_ENDPOINT": url}
    (doc,) = render_yaml_docs(EKS / "pipeline-eks.yaml", env)
    doc["metadata"]["uid"] = "u1"
    pipeline = Pipeline.from_body(doc)
    slurmjob = build_slurmjob(pipeline, f"{pipeline.spec.output.uri}_manifest.json")
    connection = SlurmJobSpec.model_validate(slurmjob["spec"]).slurm
    assert connection.ca_bundle_secret_ref is not None
    # The Secret as step 8 makes it: `$(jq -r .ca_crt ...)` drops the final newline.
    ca_pem = ca_file.read_text().rstrip("\n")
    k8s.kubectl(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        connection.ca_bundle_secret_ref.name,
        f"--from-literal=token={_jwt()}",
        f"--from-literal={connection.ca_bundle_secret_ref.key}={ca_pem}",
    )
    api_client = config.new_client_from_config(config_file=str(k8s.kubeconfig))
    clients = Clients(Kube(api_client), Options())
    try:
        assert clients.for_connection(namespace, connection).detect_version() == "v0.0.42"
        # Without the reference the bridge falls back to the system CAs: refused.
        bare = connection.model_copy(update={"ca_bundle_secret_ref": None})
        with pytest.raises(SlurmUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            clients.for_connection(namespace, bare).detect_version()
    finally:
        clients.close()
        api_client.close()
