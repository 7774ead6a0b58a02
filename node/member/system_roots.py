"""Load the system CA bundle into aiohttp's default TLS contexts after the member serves.

aiohttp builds two TLS client contexts when it is imported, and each loads the system's
CA bundle: ~40 ms of the ~135 ms of CPU its import costs. A member imports aiohttp while
it restarts, and the three members of a restarted cluster do so together on two shared
cores, so that CPU delays the first write (issue 17's restart run). Our own requests
pass explicit contexts wherever TLS is configured; aiohttp's verifying default is used
only for an https URL without a trusted CA flag (system roots, as etcd).

So, in a member whose known URLs are all plain http, `DeferredRootLoads.recording()`
records those two loads during the import instead of running them, and `load()` runs
them later in a thread. The contexts are the same objects, complete from then on; until
then a request that used one would fail to verify (closed, never open).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

# The SSLContext methods that read the system CA store (load_default_certs calls the
# other one; a recorded call is replayed through the original method).
CA_STORE_METHODS = ("load_default_certs", "set_default_verify_paths")

_patch_lock = threading.Lock()  # one recording at a time patches the class


class DeferredRootLoads:
    """CA store loads recorded in one thread during an import, run later by `load`."""

    def __init__(self) -> None:
        self._calls: list[tuple[Callable[..., Any], ssl.SSLContext, tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return len(self._calls)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """While the block runs, this thread's CA store loads are recorded, not run
        (other threads load as usual)."""
        owner = threading.get_ident()
        with _patch_lock:
            own = {name: ssl.SSLContext.__dict__.get(name) for name in CA_STORE_METHODS}
            for name in CA_STORE_METHODS:
                original = getattr(ssl.SSLContext, name)
                setattr(ssl.SSLContext, name, self._recorder(original, owner))
            try:
                yield
            finally:
                for name, method in own.items():
                    if method is None:  # inherited from the C base class: unshadow it
                        delattr(ssl.SSLContext, name)
                    else:
                        setattr(ssl.SSLContext, name, method)

    def _recorder(self, original: Callable[..., Any], owner: int) -> Callable[..., Any]:
        def method(context: ssl.SSLContext, *args: Any) -> None:
            if threading.get_ident() != owner:
                original(context, *args)
                return
            with self._lock:
                self._calls.append((original, context, args))

        return method

    def load(self) -> int:
        """Run the recorded loads (each once); how many ran."""
        with self._lock:
            calls, self._calls = self._calls, []
        for original, context, args in calls:
            original(context, *args)
        return len(calls)


def all_plain_http(urls: Iterable[str]) -> bool:
    """No https URL among `urls`: aiohttp's default contexts cannot be needed at start."""
    return all(not url.startswith("https://") for url in urls)
