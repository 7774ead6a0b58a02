"""The member's observer until the exporter is built: events recorded, then replayed.

prometheus_client and the exporter's families cost ~30 ms of CPU to import and build,
and each member of a restarted cluster paid it before its Raft node existed, with its
peers doing the same on two shared cores: the first election waits for the last member
to connect (issue 17's restart run). So the layers get this observer from the start;
the exporter is imported with the HTTP side once the start settled (serve.py), and
`attach` then replays every recorded event into it, in order, and makes this object's
hooks the exporter's own bound methods: from then on a hook costs what it did before.

Hooks may run on worker threads (backend images, defragment), so recording and the
switch share a lock. What is recorded is bounded (MAX_RECORDED); past it an event is
counted as dropped and the count is logged at `attach`: a start does not come near it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from node.server.observer import MemberObserver, NullMemberObserver

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

HOOK_NAMES = tuple(sorted(name for name in dir(MemberObserver) if name.startswith("on_")))
MAX_RECORDED = 100_000


class DeferredObserver(NullMemberObserver):
    """Every hook of MemberObserver, recorded until `attach` names the observer."""

    def __init__(self, limit: int = MAX_RECORDED) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._events: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._target: MemberObserver | None = None
        self.dropped = 0
        for name in HOOK_NAMES:
            setattr(self, name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            with self._lock:
                target = self._target
                if target is None:
                    if len(self._events) < self._limit:
                        self._events.append((name, args, kwargs))
                    else:
                        self.dropped += 1
                    return
            getattr(target, name)(*args, **kwargs)  # a caller that kept this function

        return record

    def attach(self, target: MemberObserver) -> int:
        """Replay what was recorded into `target` and hand every hook to it; how many
        events were replayed."""
        with self._lock:
            if self._target is not None:
                raise RuntimeError("the observer is attached already")
            events, self._events = self._events, []
            for name, args, kwargs in events:
                getattr(target, name)(*args, **kwargs)
            self._target = target
            for name in HOOK_NAMES:
                setattr(self, name, getattr(target, name))
        if self.dropped:
            log.warning(
                "events before the exporter was built were dropped",
                extra={"fields": {"dropped": self.dropped, "replayed": len(events)}},
            )
        return len(events)
