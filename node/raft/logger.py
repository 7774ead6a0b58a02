"""The logging seam of the core: a Protocol, so the core never imports `logging`.

A stdlib `logging.Logger` satisfies `RaftLogger` structurally and can be passed as
`Config.logger` directly; transcripts pass a logger that writes into their output.
Messages arrive preformatted (as etcd-raft's `Logger`), so a discarded line costs one call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol


class RaftLogger(Protocol):
    """What the core needs from a logger: four levels taking a finished message."""

    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


class DiscardLogger:
    """The default logger: drops everything (the core must never print)."""

    __slots__ = ()

    def _discard(self, msg: str) -> None:
        pass

    # Every level is the same no-op.
    debug = info = warning = error = _discard


if TYPE_CHECKING:
    _: RaftLogger = DiscardLogger()
