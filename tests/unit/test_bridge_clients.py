"""Which Slurm client a SlurmJob gets: the backend choice, the token from a Secret, TLS.

TLS is exercised for real: a loopback HTTPS server whose certificate is signed
by a throw-away CA answers the client's version detection. With the CA bundle
from the (fake) Secret the handshake succeeds; with the default verification
(system CAs) it is refused, so verification is really on by default.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from slurm_bridge.client import SlurmCliClient, SlurmClient, SlurmRestClient
from slurm_bridge.clients import Clients
from slurm_bridge.errors import SlurmUnavailable
from slurm_bridge.options import Options
from tests.support.fakes import FakeBridgeKube
from vectorpipe_api.slurmjob import SlurmConnection
from vectorpipe_kopf.errors import TransientError


def FakeKube(secrets: dict[tuple[str, str], dict[str, str]]) -> FakeBridgeKube:  # noqa: N802
    return FakeBridgeKube(secrets=secrets)


def rest(client: SlurmClient) -> SlurmRestClient:
    assert isinstance(client, SlurmRestClient)
    return client


def jwt() -> str:
    """A well-formed (unsigned) JWT that has not expired: enough for the client's own checks."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sun': 'root', 'exp': int(time.time()) + 3600})}.sig"


TOKEN = jwt()


def conn(**kw: Any) -> SlurmConnection:
    return SlurmConnection.model_validate(kw)


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, ca_key: Any
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), False
        )
    return builder.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(https URL, CA PEM) of a server that serves a v0.0.38 OpenAPI document."""
    d: Path = tmp_path_factory.mktemp("tls")
    ca_key, srv_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert("test-ca", ca_key, None, ca_key)
    srv = _cert("localhost", srv_key, ca, ca_key)
    (d / "srv.pem").write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    (d / "srv.key").write_bytes(
        srv_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"paths": {"/slurm/v0.0.38/ping/": {}}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "srv.pem", d / "srv.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (
            f"https://localhost:{server.server_address[1]}",
            ca.public_bytes(serialization.Encoding.PEM).decode(),
        )
    finally:
        server.shutdown()


def test_no_endpoint_means_the_sbatch_backend() -> None:
    clients = Clients(FakeKube({}), Options(slurm_conf="/etc/slurm/slurm.conf"))
    client = clients.for_connection("ns", conn())
    assert isinstance(client, SlurmCliClient) and client.slurm_conf == "/etc/slurm/slurm.conf"
    assert clients.for_connection("other", conn()) is client


def test_rest_clients_are_cached_per_connection_and_read_the_token_on_every_use() -> None:
    kube = FakeKube({("ns", "jwt"): {"token": "SLURM_JWT=a.b.c\n"}})
    clients = Clients(kube, Options())
    c = conn(endpoint="http://head:8082", tokenSecretRef={"name": "jwt"}, apiVersion="v0.0.38")
    client = clients.for_connection("ns", c)
    assert isinstance(client, SlurmRestClient)
    assert clients.for_connection("ns", c) is client
    assert clients.for_connection("ns2", c) is not client
    assert client.token_provider() == "a.b.c"
    kube.secrets[("ns", "jwt")]["token"] = "d.e.f"  # rotated
    assert client.token_provider() == "d.e.f"
    assert kube.reads == 2


def test_the_last_token_stands_in_for_a_deleted_secret() -> None:
    kube = FakeKube({("ns", "jwt"): {"token": "a.b.c"}})
    client = Clients(kube, Options()).for_connection(
        "ns", conn(endpoint="http://head:8082", tokenSecretRef={"name": "jwt"})
    )
    assert rest(client).token_provider() == "a.b.c"
    del kube.secrets[("ns", "jwt")]  # the namespace is being deleted
    assert rest(client).token_provider() == "a.b.c"
    never = Clients(FakeKube({}), Options()).for_connection(
        "ns", conn(endpoint="http://head:8082", tokenSecretRef={"name": "jwt"})
    )
    with pytest.raises(TransientError, match="SecretNotFound"):
        rest(never).token_provider()


def test_tls_verification_is_on_by_default(tls_server: tuple[str, str]) -> None:
    url, _ = tls_server
    clients = Clients(FakeKube({("ns", "jwt"): {"token": TOKEN}}), Options(slurm_timeout=5))
    client = clients.for_connection("ns", conn(endpoint=url, tokenSecretRef={"name": "jwt"}))
    with pytest.raises(SlurmUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        rest(client).detect_version()


def test_ca_bundle_from_a_secret_is_trusted(tls_server: tuple[str, str]) -> None:
    url, pem = tls_server
    kube = FakeKube({("ns", "jwt"): {"token": TOKEN}, ("ns", "ca"): {"ca.crt": pem}})
    clients = Clients(kube, Options(slurm_timeout=5))
    c = conn(endpoint=url, tokenSecretRef={"name": "jwt"}, caBundleSecretRef={"name": "ca"})
    client = clients.for_connection("ns", c)
    assert rest(client).detect_version() == "v0.0.38"
    assert clients.for_connection("ns", c) is client  # same bundle, same client


def test_insecure_skip_verify_skips_it(tls_server: tuple[str, str]) -> None:
    url, _ = tls_server
    clients = Clients(FakeKube({("ns", "jwt"): {"token": TOKEN}}), Options(slurm_timeout=5))
    c = conn(endpoint=url, tokenSecretRef={"name": "jwt"}, insecureSkipVerify=True)
    assert rest(clients.for_connection("ns", c)).detect_version() == "v0.0.38"


def test_bad_or_missing_ca_bundle_is_a_transient_problem() -> None:
    kube = FakeKube({("ns", "ca"): {"ca.crt": "not a certificate"}})
    clients = Clients(kube, Options())
    bad = conn(
        endpoint="https://h:1", tokenSecretRef={"name": "j"}, caBundleSecretRef={"name": "ca"}
    )
    with pytest.raises(TransientError) as err:
        clients.for_connection("ns", bad)
    assert err.value.reason == "CABundleInvalid"
    missing = conn(
        endpoint="https://h:1", tokenSecretRef={"name": "j"}, caBundleSecretRef={"name": "x"}
    )
    with pytest.raises(TransientError) as err:
        clients.for_connection("ns", missing)
    assert err.value.reason == "SecretNotFound"
