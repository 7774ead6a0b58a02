"""Error types the core raises: sentinels a driver can catch by type, as etcd-raft's `Err*`."""

from __future__ import annotations


class RaftError(Exception):
    """Base class of every error the Raft core raises."""


class ProposalDropped(RaftError):
    """A proposal or read request could not be accepted; the caller must retry elsewhere or later.

    Raised at once (never a hang) when there is no leader, while a leader transfer is in progress,
    or when the local member is not a voter.
    """

    def __init__(self, reason: str = "no leader") -> None:
        super().__init__(f"raft proposal dropped: {reason}")
        self.reason = reason


class StepLocalMsg(RaftError):
    """A local-only message type (MsgHup, MsgBeat, ...) was handed to `RawNode.step`."""


class StorageError(RaftError):
    """Base class of the `Storage` sentinels."""


class CompactedError(StorageError):
    """The requested index is older than the storage's first index (it was compacted away)."""


class UnavailableError(StorageError):
    """The requested index is newer than the storage's last index."""


class SnapOutOfDateError(StorageError):
    """A snapshot older than the storage's current snapshot was offered."""


class SnapshotTemporarilyUnavailable(StorageError):
    """The storage cannot produce a snapshot right now; the leader retries later."""
