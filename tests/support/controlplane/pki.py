"""The control plane's key material: a CA, serving and client certificates, kubeconfigs.

`write_pki` generates, under one directory, everything the components need:
the cluster CA, kube-apiserver's serving certificate (valid for localhost,
127.0.0.1, the `kubernetes` Service names and its first Service IP), client
certificates whose CN/O are the user and groups (the admin in
system:masters, the controller-manager's and scheduler's system users), a
separate front-proxy CA and client as kubeadm makes them, and the
service-account signing key pair. `write_kubeconfig` turns one client
identity into a kubeconfig with the PEM data embedded. All keys are RSA 2048,
certificates are backdated an hour and valid 30 days: enough for a test run.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pki:
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


def new_key() -> rsa.RSAPrivateKey:
    # RSA rather than ECDSA: every component (and the SA token signer) accepts it.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def issue(
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


def write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_pki(pki: Pki, service_cidr: str) -> None:
    """Generate every key and certificate the control plane uses into `pki.dir`."""
    pki.dir.mkdir(parents=True, exist_ok=True)
    ca_key = new_key()
    ca = issue(ca_key, "vectorpipe-test-ca", is_ca=True)
    write_key(pki.ca_key, ca_key)
    write_cert(pki.ca_cert, ca)

    network = ipaddress.ip_network(service_cidr)
    kubernetes_service_ip = str(next(network.hosts()))
    serving_key = new_key()
    serving = issue(
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
    write_key(pki.key("apiserver"), serving_key)
    write_cert(pki.cert("apiserver"), serving)

    # Client identities: the CN is the user name and O the groups; the
    # bootstrap RBAC policy already binds the two system users.
    clients = {
        "admin": ("vectorpipe-admin", ["system:masters"]),
        "controller-manager": ("system:kube-controller-manager", []),
        "scheduler": ("system:kube-scheduler", []),
    }
    for name, (cn, orgs) in clients.items():
        key = new_key()
        write_key(pki.key(name), key)
        write_cert(
            pki.cert(name),
            issue(key, cn, organizations=orgs, issuer=(ca, ca_key), client=True),
        )

    # A separate CA for the front proxy, as kubeadm does: the API server
    # publishes it in extension-apiserver-authentication, where the
    # controller-manager's and scheduler's delegated authentication expect
    # it (without it they log a CA-bundle error every few seconds), and
    # aggregated API servers would need it too.
    fp_ca_key = new_key()
    fp_ca = issue(fp_ca_key, "vectorpipe-test-front-proxy-ca", is_ca=True)
    write_key(pki.key("front-proxy-ca"), fp_ca_key)
    write_cert(pki.cert("front-proxy-ca"), fp_ca)
    fp_key = new_key()
    write_key(pki.key("front-proxy-client"), fp_key)
    write_cert(
        pki.cert("front-proxy-client"),
        issue(fp_key, "front-proxy-client", issuer=(fp_ca, fp_ca_key), client=True),
    )

    sa_key = new_key()
    write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def write_kubeconfig(path: Path, server: str, pki: Pki, client: str) -> None:
    """A kubeconfig for `client`'s certificate against `server`, PEM data embedded."""

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
                    "server": server,
                    "certificate-authority-data": b64(pki.ca_cert),
                },
            }
        ],
        "users": [
            {
                "name": client,
                "user": {
                    "client-certificate-data": b64(pki.cert(client)),
                    "client-key-data": b64(pki.key(client)),
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
