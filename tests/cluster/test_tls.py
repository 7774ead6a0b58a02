"""TLS as etcd runs it: a 3-member cluster on mTLS (`raftmon cluster --tls`), real clients.

Clients are the ones that speak the JSON gateway: aiohttp, the project's load generator
client, curl (Debian's) and a real Prometheus scraping with `tls_config`. etcdctl v3 speaks
gRPC, which raftmon does not serve yet, so it is not among them.

Broken certificates (a foreign CA, expired, issued for another host) are tried on a
second cluster whose third member is restarted with each one in turn: the two good
members keep their leader, the broken one never learns it, and a log line says why.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import shlex
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lab.certs import issue, make_ca
from lab.cluster import LocalCluster, MemberProcess
from lab.procs import hostport, http_json, wait_until
from lab.prom import Member, Prometheus
from loadgen.client import EtcdClient
from tests.cluster.conftest import FAST, start_cluster
from tests.helpers import require_tool

pytestmark = pytest.mark.cluster

FOO, BAR = "Zm9v", "YmFy"  # base64 of "foo", "bar"


def _start(base: Path, extra: list[str] | None = None) -> LocalCluster:
    return start_cluster(base, 3, extra, tls=True)


@pytest.fixture(scope="module")
def tls3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A healthy 3-member cluster with https client, peer and metrics URLs, mTLS everywhere."""
    cluster = _start(tmp_path_factory.mktemp("tls3"))
    try:
        yield cluster
    finally:
        cluster.stop()


def _ctx(cluster: LocalCluster) -> ssl.SSLContext:
    """The CA + client certificate context of a --tls cluster."""
    ctx = cluster.client_ssl
    assert ctx is not None
    return ctx


def _log(cluster: LocalCluster, name: str) -> str:
    m: MemberProcess = cluster.member(name)
    return m.log_path.read_text(errors="replace")


# ---- clients with the client certificate -------------------------------------------------


async def _put_and_range_everywhere(cluster: LocalCluster, key: str, value: str) -> list[Any]:
    connector = aiohttp.TCPConnector(ssl=_ctx(cluster))
    async with aiohttp.ClientSession(connector=connector) as session:
        put = {"key": key, "value": value}
        async with session.post(cluster.endpoints[1] + "/v3/kv/put", json=put) as resp:
            assert resp.status == 200, await resp.text()
        answers = []
        for url in cluster.endpoints:  # linearizable reads: every member sees the put
            async with session.post(url + "/v3/kv/range", json={"key": key}) as resp:
                assert resp.status == 200
                answers.append(await resp.json())
        return answers


def test_mtls_cluster_serves_puts_and_ranges_to_aiohttp_with_the_client_cert(
    tls3: LocalCluster,
) -> None:
    answers = asyncio.run(_put_and_range_everywhere(tls3, FOO, BAR))
    assert [a["kvs"][0]["value"] for a in answers] == [BAR, BAR, BAR]
    assert len({a["header"]["member_id"] for a in answers}) == 3


def test_a_lease_keepalive_on_a_follower_is_forwarded_to_the_leader_over_mtls(
    tls3: LocalCluster,
) -> None:
    leader = tls3.wait_leader()
    follower = next(m for m in tls3.members if m.name != leader)

    async def run() -> tuple[Any, Any]:
        connector = aiohttp.TCPConnector(ssl=_ctx(tls3))
        async with aiohttp.ClientSession(connector=connector) as session:
            url = follower.client_url
            async with session.post(url + "/v3/lease/grant", json={"TTL": 30}) as resp:
                granted = await resp.json()
            body = {"ID": granted["ID"]}
            async with session.post(url + "/v3/lease/keepalive", json=body) as resp:
                kept = json.loads((await resp.text()).splitlines()[0])
            return granted, kept

    granted, kept = asyncio.run(run())
    assert kept["result"]["ID"] == granted["ID"], kept
    assert int(kept["result"]["TTL"]) > 0, kept


def test_loadgen_client_puts_and_reads_over_mtls(tls3: LocalCluster) -> None:
    async def run() -> Any:
        async with EtcdClient(tls3.endpoints, ssl=tls3.client_ssl) as etcd:
            await etcd.put(b"loadgen-tls", b"v1")
            return await etcd.range(b"loadgen-tls", endpoint=tls3.endpoints[2])

    result = asyncio.run(run())
    assert [kv.value for kv in result.kvs] == [b"v1"]


def test_the_printed_curl_command_works_as_written(tls3: LocalCluster) -> None:
    require_tool("curl")
    asyncio.run(_put_and_range_everywhere(tls3, FOO, BAR))
    command = tls3.curl_command()
    assert command.startswith("curl --cacert ")
    out = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert f'"value":"{BAR}"' in out.stdout


def test_curl_put_then_range_with_the_client_cert(tls3: LocalCluster) -> None:
    curl = require_tool("curl")
    assert tls3.certs is not None
    c = tls3.certs
    tls = ["--cacert", str(c.ca.cert_file), "--cert", str(c.client.cert_file)]
    tls += ["--key", str(c.client.key_file)]
    url = tls3.endpoints[2]
    put = subprocess.run(
        [curl, "-sS", *tls, f"{url}/v3/kv/put", "-d", '{"key":"Y3VybA==","value":"eWVz"}'],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert put.returncode == 0, put.stderr
    got = subprocess.run(
        [curl, "-sS", *tls, f"{url}/v3/kv/range", "-d", '{"key":"Y3VybA=="}'],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert '"value":"eWVz"' in got.stdout, got.stdout + got.stderr


# ---- refusals ------------------------------------------------------------------------------


def test_client_without_a_certificate_is_refused_under_client_cert_auth(tls3: LocalCluster) -> None:
    assert tls3.certs is not None
    ca_only = ssl.create_default_context(cafile=str(tls3.certs.ca.cert_file))

    async def attempt() -> BaseException | None:
        connector = aiohttp.TCPConnector(ssl=ca_only)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                async with session.post(tls3.endpoints[0] + "/v3/kv/range", json={"key": FOO}):
                    return None
            except (aiohttp.ClientError, OSError) as err:
                return err

    assert isinstance(asyncio.run(attempt()), aiohttp.ClientError | OSError)
    curl = require_tool("curl")
    out = subprocess.run(
        [curl, "-sS", "--cacert", str(tls3.certs.ca.cert_file), tls3.endpoints[0] + "/health"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode != 0
    assert "health" not in out.stdout
    wait_until(
        "m1 logs the rejected handshake",
        lambda: (
            "rejected connection listener=client" in _log(tls3, "m1")
            and "PEER_DID_NOT_RETURN_A_CERTIFICATE" in _log(tls3, "m1")
        ),
        timeout=10,
    )


def test_plain_http_to_the_tls_client_port_gets_gos_400(tls3: LocalCluster) -> None:
    host, port = hostport(tls3.endpoints[0]).split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer == (
        b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    )
    # the same for curl, which then exits cleanly with Go's words
    curl = require_tool("curl")
    out = subprocess.run(
        [curl, "-sS", f"http://{host}:{port}/health"], capture_output=True, text=True, timeout=20
    )
    assert out.stdout == "Client sent an HTTP request to an HTTPS server.\n"
    assert tls3.leader() is not None  # nothing else happened to the member


def test_prometheus_scrapes_every_member_over_https_with_tls_config(
    tls3: LocalCluster, tmp_path: Path
) -> None:
    binary = require_tool("prometheus")
    assert tls3.certs is not None
    prom = Prometheus(
        binary, tmp_path / "prom", lab=True, tls_config=tls3.certs.prometheus_tls_config()
    )
    prom.set_targets(
        "tls", [Member(m.name, hostport(m.metrics_url)) for m in tls3.members], scheme="https"
    )
    prom.start()
    try:

        def all_up() -> dict[str, float] | None:
            try:
                up = prom.values('up{job="etcd", cluster="tls"}')
            except (OSError, ValueError):
                return None
            return up if len(up) == 3 and set(up.values()) == {1.0} else None

        up = wait_until("prometheus scrapes 3 https members", all_up, timeout=60, interval=0.5)
        assert sorted(up) == ["m1", "m2", "m3"]
        has_leader = prom.values('etcd_server_has_leader{cluster="tls"}')
        assert has_leader == {"m1": 1.0, "m2": 1.0, "m3": 1.0}
    finally:
        prom.stop()


# ---- config errors at start-up (real processes) --------------------------------------------


def _run_node(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", "node", f"--data-dir={tmp_path / 'd'}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_https_client_url_without_certificates_is_a_startup_error(tmp_path: Path) -> None:
    out = _run_node(["--listen-client-urls=https://127.0.0.1:0"], tmp_path)
    assert out.returncode == 2
    assert (
        "cannot listen on TLS for https://127.0.0.1:0: KeyFile and CertFile are not presented"
        in (out.stderr)
    )


def test_unknown_cipher_suite_is_a_startup_error(tmp_path: Path) -> None:
    out = _run_node(["--cipher-suites=TLS_RSA_WITH_NULL_MD5"], tmp_path)
    assert out.returncode == 2
    assert "unexpected TLS cipher suite 'TLS_RSA_WITH_NULL_MD5'" in out.stderr


# ---- peers with certificates the cluster must refuse ---------------------------------------


@pytest.fixture(scope="module")
def bad_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A TLS cluster whose m3 is restarted by each test with a broken peer certificate.

    Snapshots are frequent and the catch-up window short, so the last test can show m3
    catching up by a snapshot streamed over the peer TLS connection.
    """
    base = tmp_path_factory.mktemp("tls-bad-peer")
    cluster = _start(base, ["--snapshot-count=100", "--experimental-snapshot-catchup-entries=20"])
    try:
        cluster.kill("m3")
        yield cluster
    finally:
        cluster.stop()


def _broken_cert(cluster: LocalCluster, kind: str) -> list[str]:
    """Peer flags for m3 with a certificate of the given kind (the rest stays valid)."""
    assert cluster.certs is not None
    folder = cluster.base_dir / f"bad-{kind}"
    ca = cluster.certs.ca
    trusted = ca.cert_file
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    if kind == "foreign-ca":
        ca = make_ca(folder, "foreign-ca", "someone else's CA")
        trusted = ca.cert_file
        pair = issue(ca, folder, "m3", "m3")
    elif kind == "expired":
        start = past - datetime.timedelta(days=30)
        pair = issue(ca, folder, "m3", "m3", not_before=start, not_after=past)
    else:  # wrong-host: valid, from the right CA, for an address m3 does not listen on
        pair = issue(ca, folder, "m3", "m3", sans=("10.255.0.3", "m3.example.invalid"))
    return [
        f"--peer-cert-file={pair.cert_file}",
        f"--peer-key-file={pair.key_file}",
        f"--peer-trusted-ca-file={trusted}",
    ]


# kind -> (words a good member logs about m3, words m3 logs, if any, about the others).
# NB: OpenSSL sends the CA along with the leaf (it builds the chain from the trust store),
# so a foreign CA reads "self-signed certificate in certificate chain", not error 20.
REFUSALS = {
    "foreign-ca": (
        "certificate verify failed: self-signed certificate in certificate chain",
        "certificate verify failed",
    ),
    "expired": ("certificate has expired", ""),
    "wrong-host": ("IP address mismatch, certificate is not valid for '127.0.0.1'", ""),
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_a_peer_with_a_broken_certificate_cannot_join(bad_peer: LocalCluster, kind: str) -> None:
    m3 = bad_peer.member("m3")
    if m3.alive:
        bad_peer.kill("m3")
    base_args = [a for a in m3.args if not a.startswith("--peer-")]
    m3.args = [*base_args, "--peer-client-cert-auth", *_broken_cert(bad_peer, kind)]
    m3.log_path.write_text("")
    bad_peer.restart("m3", wait=False)
    bad_peer.wait_member_ready("m3", timeout=30)  # its client port (good cert) answers
    good_words, own_words = REFUSALS[kind]
    m3_id = wait_until("m3 member id", lambda: (bad_peer.status("m3") or {}).get("header"), 10)[
        "member_id"
    ]
    m3_hex = f"{int(m3_id):x}"

    def refusal_logged() -> bool:
        text = _log(bad_peer, "m1") + _log(bad_peer, "m2")
        return any(
            good_words in line and (m3_hex in line or "rejected connection" in line)
            for line in text.splitlines()
        )

    wait_until(f"a good member logs why m3 is refused ({kind})", refusal_logged, timeout=20)
    if own_words:
        wait_until(
            f"m3 logs why it cannot reach the others ({kind})",
            lambda: own_words in _log(bad_peer, "m3"),
            timeout=20,
        )
    # m3 stays leaderless for several election timeouts while the other two keep theirs. If m3
    # led before its restart, m1 and m2 name it until their election timeout: wait past that.
    leader = bad_peer.wait_leader(timeout=20, exclude="m3")
    assert leader in ("m1", "m2")
    deadline = time.monotonic() + 3.0  # six election timeouts of 500 ms
    while time.monotonic() < deadline:
        st = bad_peer.status("m3")
        assert st is not None
        assert st.get("leader") in (None, "0"), st
        time.sleep(0.2)
    assert bad_peer.wait_leader(timeout=20) == leader
    bad_peer.kill("m3")


# ---- --cipher-suites restricts TLS 1.2 as in etcd ---------------------------------------


def _handshake(url: str, ctx: ssl.SSLContext) -> str:
    """The cipher negotiated with the member at `url`, or the handshake error."""
    host, port = hostport(url).split(":")
    try:
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cipher = tls.cipher()
            return f"{tls.version()} {cipher[0] if cipher else ''}"
    except (ssl.SSLError, OSError) as err:
        return f"refused: {err}"


def test_cipher_suites_restrict_tls12_and_leave_tls13_as_etcd_does(tmp_path: Path) -> None:
    suite = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    cluster = LocalCluster(tmp_path, 1, extra_args=[*FAST, f"--cipher-suites={suite}"], tls=True)
    try:
        cluster.start()
        assert cluster.client_ssl is not None
        url = cluster.endpoints[0]

        def client(ciphers: str | None, tls13: bool) -> ssl.SSLContext:
            ctx = cluster.client_ssl
            assert ctx is not None
            if not tls13:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            if ciphers:
                ctx.set_ciphers(ciphers)
            return ctx

        assert _handshake(url, client("ECDHE-RSA-AES128-GCM-SHA256", False)) == (
            "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256"
        )
        refused = _handshake(url, client("ECDHE-RSA-AES256-GCM-SHA384", False))
        assert refused.startswith("refused:"), refused
        assert _handshake(url, client(None, True)).startswith("TLSv1.3 ")
    finally:
        cluster.stop()


def test_m3_with_its_valid_certificate_catches_up_by_a_snapshot_over_tls(
    bad_peer: LocalCluster,
) -> None:
    assert bad_peer.certs is not None
    assert bad_peer.client_ssl is not None
    m3 = bad_peer.member("m3")
    if m3.alive:
        bad_peer.kill("m3")
    base_args = [a for a in m3.args if not a.startswith("--peer-")]
    m3.args = [*base_args, *bad_peer.certs.member_flags("m3")[4:]]
    up = [m for m in bad_peer.members if m.name != "m3"]

    async def write(n: int) -> None:
        connector = aiohttp.TCPConnector(ssl=_ctx(bad_peer))
        async with aiohttp.ClientSession(connector=connector) as session:
            for i in range(n):
                body = {"key": base64.b64encode(f"snap/{i:04d}".encode()).decode(), "value": "eA=="}
                async with session.post(up[i % 2].client_url + "/v3/kv/put", json=body) as resp:
                    assert resp.status == 200, await resp.text()

    asyncio.run(write(250))  # well past --snapshot-count=100 while m3 is down
    bad_peer.restart("m3", wait=True)
    last = base64.b64encode(b"snap/0249").decode()

    def caught_up() -> bool:
        try:
            answer = http_json(
                m3.client_url + "/v3/kv/range",
                {"key": last, "serializable": True},
                context=bad_peer.client_ssl,
            )
        except OSError:
            return False
        return bool(answer.get("kvs"))

    wait_until("m3 catches up", caught_up, timeout=30, detail=m3.log_tail)
    # The install logs its line one thread hop after the data is readable: wait for it.
    wait_until(
        "m3 logs the snapshot it applied",
        lambda: "applied snapshot from leader" in m3.log_path.read_text(),
        timeout=30,
        detail=m3.log_tail,
    )


# ---- etcd's own client over gRPC --------------------------------------------------------


def _etcdctl(
    cluster: LocalCluster, *args: str, cert: bool = True
) -> subprocess.CompletedProcess[str]:
    certs = cluster.certs
    assert certs is not None
    tls = [f"--cacert={certs.ca.cert_file}"]
    if cert:
        tls += [f"--cert={certs.client.cert_file}", f"--key={certs.client.key_file}"]
    return subprocess.run(
        [require_tool("etcdctl"), f"--endpoints={','.join(cluster.endpoints)}", *tls, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )


def test_etcdctl_with_the_client_certificate_speaks_grpc_over_mtls(tls3: LocalCluster) -> None:
    put = _etcdctl(tls3, "put", "/tls/grpc", "yes")
    assert put.returncode == 0, put.stderr
    got = _etcdctl(tls3, "get", "/tls/grpc", "--print-value-only")
    assert got.stdout.strip() == "yes", got.stderr
    health = _etcdctl(tls3, "endpoint", "health")
    assert health.returncode == 0, health.stderr
    assert health.stderr.count("is healthy") == 3


def test_etcdctl_without_a_client_certificate_is_refused(tls3: LocalCluster) -> None:
    got = _etcdctl(
        tls3, "--dial-timeout=2s", "--command-timeout=3s", "get", "/tls/grpc", cert=False
    )
    assert got.returncode != 0
    assert "yes" not in got.stdout


def test_grpcio_over_mtls_negotiates_h2_while_curl_gets_the_json_gateway(
    tls3: LocalCluster,
) -> None:
    """ALPN: gRPC clients (offering only h2) get gRPC, curl (h2 and http/1.1) the gateway."""
    import grpc

    from etcdproto.gen.etcdserverpb import rpc_pb2 as pb
    from etcdproto.gen.etcdserverpb import rpc_pb2_grpc

    certs = tls3.certs
    assert certs is not None
    creds = grpc.ssl_channel_credentials(
        root_certificates=certs.ca.cert_file.read_bytes(),
        private_key=certs.client.key_file.read_bytes(),
        certificate_chain=certs.client.cert_file.read_bytes(),
    )
    target = tls3.endpoints[0].removeprefix("https://")
    with grpc.secure_channel(target, creds) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Put(pb.PutRequest(key=b"/tls/alpn", value=b"h2"), timeout=20)
        got = kv.Range(pb.RangeRequest(key=b"/tls/alpn"), timeout=20)
    assert [kv.value for kv in got.kvs] == [b"h2"]
    curl = subprocess.run(
        [
            require_tool("curl"),
            "-s",
            "-w",
            "\\n%{http_version}",
            "--cacert",
            str(certs.ca.cert_file),
            "--cert",
            str(certs.client.cert_file),
            "--key",
            str(certs.client.key_file),
            "-X",
            "POST",
            tls3.endpoints[0] + "/v3/kv/range",
            "-d",
            json.dumps({"key": base64.b64encode(b"/tls/alpn").decode()}),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    body, _, version = curl.stdout.rpartition("\n")
    assert version == "1.1"
    assert json.loads(body)["kvs"][0]["value"] == base64.b64encode(b"h2").decode()
