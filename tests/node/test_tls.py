"""node/tls.py: etcd's TLSInfo meanings turned into ssl contexts (no sockets here)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from lab.certs import issue, make_ca
from node.tls import GO_CIPHER_SUITES, TLSInfo, client_context, openssl_ciphers, server_context


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    folder: Path = tmp_path_factory.mktemp("certs")
    ca = make_ca(folder)
    leaf = issue(ca, folder, "m1", "m1")
    return str(leaf.cert_file), str(leaf.key_file), str(ca.cert_file)


def test_a_trusted_ca_alone_makes_the_server_require_client_certificates(
    pair: tuple[str, str, str],
) -> None:
    cert, key, ca = pair
    assert server_context(TLSInfo(cert, key)).verify_mode == ssl.CERT_NONE
    assert server_context(TLSInfo(cert, key, ca)).verify_mode == ssl.CERT_REQUIRED
    auth_only = TLSInfo(cert, key, client_cert_auth=True)
    assert server_context(auth_only).verify_mode == ssl.CERT_REQUIRED


def test_contexts_refuse_anything_below_tls12(pair: tuple[str, str, str]) -> None:
    cert, key, ca = pair
    assert server_context(TLSInfo(cert, key, ca)).minimum_version == ssl.TLSVersion.TLSv1_2
    client = client_context(TLSInfo(cert, key, ca))
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.check_hostname
    assert client.verify_mode == ssl.CERT_REQUIRED


def test_go_cipher_names_map_to_openssl_names() -> None:
    names = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
    assert openssl_ciphers(names) == "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
    assert len(GO_CIPHER_SUITES) >= 20


def test_a_go_suite_this_openssl_lacks_is_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match=r"TLS_RSA_WITH_RC4_128_SHA.*not available"):
        openssl_ciphers(("TLS_RSA_WITH_RC4_128_SHA",))


def test_cipher_suites_limit_the_tls12_list(pair: tuple[str, str, str]) -> None:
    cert, key, ca = pair
    info = TLSInfo(cert, key, ca, cipher_suites=("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",))
    tls12 = {c["name"] for c in server_context(info).get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-RSA-AES128-GCM-SHA256"}
