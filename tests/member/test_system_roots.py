"""node.member.system_roots: the CA bundle loads of an import are deferred, then run."""

from __future__ import annotations

import ssl
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from node.member.system_roots import CA_STORE_METHODS, DeferredRootLoads, all_plain_http

REPO = Path(__file__).resolve().parents[2]


def _stats(context: ssl.SSLContext) -> dict[str, int]:
    return dict(context.cert_store_stats())


def test_loads_in_the_block_are_recorded_and_run_later() -> None:
    reference = ssl.create_default_context()
    roots = DeferredRootLoads()
    with roots.recording():
        verified = ssl.create_default_context()
        plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        plain.set_default_verify_paths()
    assert roots.pending == 2
    assert roots.load() == 2
    assert roots.load() == 0  # each once
    assert _stats(verified) == _stats(reference)
    assert verified.verify_mode == ssl.CERT_REQUIRED
    assert verified.check_hostname


def test_the_class_is_restored_after_the_block() -> None:
    before = {name: ssl.SSLContext.__dict__.get(name) for name in CA_STORE_METHODS}
    roots = DeferredRootLoads()
    try:
        with roots.recording():
            raise RuntimeError("an import failed")
    except RuntimeError:
        pass
    assert {name: ssl.SSLContext.__dict__.get(name) for name in CA_STORE_METHODS} == before
    assert _stats(ssl.create_default_context()) == _stats(ssl.create_default_context())


def test_other_threads_load_as_usual_meanwhile() -> None:
    reference = _stats(ssl.create_default_context())
    roots = DeferredRootLoads()
    seen: list[dict[str, int]] = []
    with roots.recording():
        other = threading.Thread(target=lambda: seen.append(_stats(ssl.create_default_context())))
        other.start()
        other.join(30)
    assert seen == [reference]
    assert roots.pending == 0


def test_aiohttps_import_defers_both_of_its_contexts() -> None:
    """In a fresh interpreter (aiohttp imported once per process): its two default client
    contexts are built empty during the import and complete after `load`."""
    program = textwrap.dedent(
        """
        import ssl
        from node.member.system_roots import DeferredRootLoads
        roots = DeferredRootLoads()
        with roots.recording():
            import aiohttp.connector as connector
        print(roots.pending)
        print(roots.load())
        reference = ssl.create_default_context().cert_store_stats()
        print(connector._SSL_CONTEXT_VERIFIED.cert_store_stats() == reference)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "2", "True"]


def test_only_plain_http_urls_defer() -> None:
    assert all_plain_http(["http://127.0.0.1:2379", "http://127.0.0.1:2380"])
    assert not all_plain_http(["http://127.0.0.1:2379", "https://127.0.0.1:2380"])
