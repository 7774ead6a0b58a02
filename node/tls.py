"""TLS for every listener and peer dial: etcd's TLSInfo turned into ssl.SSLContext objects.

One module for both kinds of traffic, because etcd uses one type (`transport.TLSInfo`)
for both: the client side (--cert-file, --key-file, --trusted-ca-file,
--client-cert-auth, also used for --listen-metrics-urls) and the peer side (the same
flags with a `peer-` prefix) differ only in which files they name. It sits in the base
layer, importing nothing from raftmon, so the peer transport, the member's client
listeners and the config can all use it without importing each other.

etcd's meanings, kept on purpose:
- a server with --trusted-ca-file *or* --client-cert-auth requires and verifies a
  client certificate (etcd's `ServerConfig`: either one sets RequireAndVerifyClientCert);
- TLS 1.2 is the minimum; --cipher-suites take Go's names and restrict TLS 1.2
  (TLS 1.3 suites are not configurable, in Go as in OpenSSL's `set_ciphers`);
- a client verifies the server's certificate against the trusted CA file and the host
  name of the URL it dials (Go's default), and presents its own certificate if it has one.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

# Go's crypto/tls names (what etcd's --cipher-suites takes, pkg/tlsutil/cipher_suites.go)
# -> OpenSSL's names (what ssl.SSLContext.set_ciphers takes). TLS 1.2 and below only.
GO_CIPHER_SUITES: dict[str, str] = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}


def openssl_ciphers(go_names: tuple[str, ...]) -> str:
    """etcd's --cipher-suites (Go names) -> an OpenSSL cipher string; ValueError names the bad one.

    A suite Go knows but this OpenSSL does not offer (RC4, 3DES at today's security
    level) is refused too: silently serving with fewer suites than asked is worse.
    """
    out: list[str] = []
    for name in go_names:
        openssl = GO_CIPHER_SUITES.get(name)
        if openssl is None:
            raise ValueError(
                f"unexpected TLS cipher suite {name!r} (want Go names such as "
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"
            )
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(openssl)
        except ssl.SSLError:
            raise ValueError(
                f"TLS cipher suite {name!r} ({openssl}) is not available in this OpenSSL"
            ) from None
        out.append(openssl)
    return ":".join(out)


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """The files and switches of one side (client or peer), as etcd's transport.TLSInfo."""

    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    cipher_suites: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """No certificate and key: such a side cannot serve https (etcd's `Empty()`)."""
        return not self.cert_file and not self.key_file

    @property
    def requires_client_cert(self) -> bool:
        """etcd's rule: a trusted CA file alone already makes the server demand a client cert."""
        return bool(self.trusted_ca_file) or self.client_cert_auth


def _base(ctx: ssl.SSLContext, info: TLSInfo) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if info.cipher_suites:
        # NB: TLS 1.2 only. TLS 1.3 keeps its own fixed suites, as in etcd 3.4.23 (measured:
        # with --cipher-suites set, `openssl s_client -tls1_3` still negotiates TLS 1.3).
        ctx.set_ciphers(openssl_ciphers(info.cipher_suites))
    if info.cert_file or info.key_file:
        ctx.load_cert_chain(info.cert_file, info.key_file)
    return ctx


def server_context(info: TLSInfo) -> ssl.SSLContext:
    """The context of an https listener (client, peer or metrics URL)."""
    ctx = _base(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), info)
    if info.requires_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        if info.trusted_ca_file:
            ctx.load_verify_locations(cafile=info.trusted_ca_file)
        else:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return ctx


def client_context(info: TLSInfo) -> ssl.SSLContext:
    """The context of an https dial: verify the server (CA + host name), present our cert."""
    ctx = _base(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), info)  # CERT_REQUIRED, check_hostname
    if info.trusted_ca_file:
        ctx.load_verify_locations(cafile=info.trusted_ca_file)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return ctx


def describe_error(err: BaseException) -> str:
    """A short reason for a failed handshake, for key=value log lines.

    OpenSSL's verify messages are already the words an operator searches for
    ("unable to get local issuer certificate", "certificate has expired",
    "Hostname mismatch, certificate is not valid for '127.0.0.1'"); peer-side alerts
    arrive as reasons such as TLSV1_ALERT_UNKNOWN_CA.
    """
    if isinstance(err, ssl.SSLCertVerificationError):
        return str(err.verify_message or err.reason or err)
    if isinstance(err, ssl.SSLError):
        return str(err.reason or err)
    cause = err.__cause__ or err.__context__
    if isinstance(cause, ssl.SSLError):
        return describe_error(cause)
    if isinstance(err, ConnectionError) and not str(err):
        # A Python or Go client that rejects our certificate just closes the socket.
        return f"{type(err).__name__} during the TLS handshake (does the remote trust our CA?)"
    return str(err) or type(err).__name__


def any_https(urls: Iterable[str]) -> bool:
    """True when one of the URLs is https (contexts are built only for members that need them)."""
    return any(url.startswith("https://") for url in urls)
