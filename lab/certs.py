"""Certificates for `raftmon cluster --tls` and the TLS tests, made with `cryptography`.

One CA signs one certificate per member (used as both its server and peer certificate,
with serverAuth and clientAuth, as etcd's own examples and kubeadm do: a member dials
its peers and its leader's client URL with it) and one client certificate for curl,
the load generator and Prometheus. SANs are 127.0.0.1 and localhost, the addresses
the local cluster listens on. Files are PEM, keys unencrypted and mode 0600, under
`<data dir>/tls/`.

An `Authority` (the CA and the client certificate) can sign several clusters: `raftmon
lab --tls` makes one per invocation, so the one Prometheus every run shares scrapes all
of them with one `tls_config`, and one client context reaches every member.

`issue()` also makes the broken certificates the tests need: an expired one, one for
another host, one from a foreign CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from pathlib import Path

LOOPBACK_SANS = ("127.0.0.1", "localhost")
VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key on disk (and in memory, to sign with when it is a CA)."""

    cert_file: Path
    key_file: Path
    cert: x509.Certificate
    key: rsa.RSAPrivateKey


def client_flags(ca: KeyPair, client: KeyPair) -> list[str]:
    """`raftmon load`'s (and etcdctl's) flags to trust `ca` and present `client`."""
    return [f"--cacert={ca.cert_file}", f"--cert={client.cert_file}", f"--key={client.key_file}"]


def _tls_config(ca: KeyPair, client: KeyPair) -> dict[str, str]:
    return {
        "ca_file": str(ca.cert_file.resolve()),
        "cert_file": str(client.cert_file.resolve()),
        "key_file": str(client.key_file.resolve()),
    }


@dataclass(frozen=True)
class ClusterCerts:
    """Everything `raftmon cluster --tls` hands to members and clients."""

    ca: KeyPair
    members: dict[str, KeyPair]
    client: KeyPair

    def prometheus_tls_config(self) -> dict[str, str]:
        """Prometheus' `tls_config` for scraping the members with the client certificate."""
        return _tls_config(self.ca, self.client)

    def member_flags(self, name: str) -> list[str]:
        """etcd's flags for one member: same CA and certificate for client and peer traffic."""
        pair = self.members[name]
        return [
            f"--cert-file={pair.cert_file}",
            f"--key-file={pair.key_file}",
            f"--trusted-ca-file={self.ca.cert_file}",
            "--client-cert-auth",
            f"--peer-cert-file={pair.cert_file}",
            f"--peer-key-file={pair.key_file}",
            f"--peer-trusted-ca-file={self.ca.cert_file}",
            "--peer-client-cert-auth",
        ]


@dataclass(frozen=True)
class Authority:
    """A CA and the one client certificate it signed, able to sign any number of clusters."""

    ca: KeyPair
    client: KeyPair

    def cluster_certs(self, folder: Path, names: list[str]) -> ClusterCerts:
        """A server+peer certificate per member in `folder`, signed by this CA."""
        members = {name: issue(self.ca, folder, name, name) for name in names}
        return ClusterCerts(ca=self.ca, members=members, client=self.client)

    def prometheus_tls_config(self) -> dict[str, str]:
        """One `tls_config` that scrapes every cluster this CA signed."""
        return _tls_config(self.ca, self.client)

    def client_ssl(self) -> ssl.SSLContext:
        """Trust this CA, present the client certificate: what every lab client uses."""
        ctx = ssl.create_default_context(cafile=str(self.ca.cert_file))
        ctx.load_cert_chain(self.client.cert_file, self.client.key_file)
        return ctx


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(folder: Path, stem: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> KeyPair:
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_bytes)
    return KeyPair(cert_file, key_file, cert, key)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "raftmon"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


# Every flag of X.509 KeyUsage; a certificate sets the ones it is granted, the rest False.
KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)
# A CA signs certificates and CRLs; a leaf signs handshakes and enciphers keys (RSA).
CA_USAGES = ("digital_signature", "key_cert_sign", "crl_sign")
LEAF_USAGES = ("digital_signature", "key_encipherment")


def _key_usage(granted: tuple[str, ...]) -> x509.KeyUsage:
    return x509.KeyUsage(**{usage: usage in granted for usage in KEY_USAGES})


def make_ca(folder: Path, stem: str = "ca", common_name: str = "raftmon CA") -> KeyPair:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(CA_USAGES), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(folder, stem, cert, key)


def issue(
    ca: KeyPair,
    folder: Path,
    stem: str,
    common_name: str,
    *,
    sans: tuple[str, ...] = LOOPBACK_SANS,
    server: bool = True,
    client: bool = True,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> KeyPair:
    """A leaf certificate signed by `ca`; SANs that parse as IPs become IP SANs."""
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = []
    for san in sans:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            alt_names.append(x509.DNSName(san))
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(LEAF_USAGES), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return _write(folder, stem, builder.sign(ca.key, hashes.SHA256()), key)


def make_authority(folder: Path) -> Authority:
    """A new CA and its client certificate (no server usage, no SANs) in `folder`."""
    ca = make_ca(folder)
    client = issue(ca, folder, "client", "client", sans=(), server=False)
    return Authority(ca=ca, client=client)


def make_cluster_certs(folder: Path, names: list[str]) -> ClusterCerts:
    """A CA, one server+peer certificate per member and a client certificate, in `folder`."""
    return make_authority(folder).cluster_certs(folder, names)
