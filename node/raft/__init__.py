"""raftmon's Raft core: a pure, deterministic consensus engine (after etcd-io/raft).

Rule 1: nothing in this package performs I/O, reads a clock, starts a thread or draws
unseeded randomness; the only randomness is the injected `Config.rng`.
Rule 2: the core never calls out. Everything the world must do is in a `Ready`: persist
(`hard_state`, `entries`, `snapshot`), send (`messages` now, `messages_after_persist` only
after the fsync), apply (`committed_entries`), answer reads (`read_states`); then `advance`.
Rule 3: time is `tick()`; one tick is one heartbeat interval unit chosen by the driver.
Rule 4: the configuration is an explicit `ConfState` value (storage, or `Config.peers`).

`tests/raft/test_purity.py` enforces rule 1 on the import graph.
"""

from node.raft.config import Config
from node.raft.errors import (
    CompactedError,
    ProposalDropped,
    RaftError,
    SnapOutOfDateError,
    SnapshotTemporarilyUnavailable,
    StepLocalMsg,
    UnavailableError,
)
from node.raft.logger import DiscardLogger, RaftLogger
from node.raft.messages import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from node.raft.quorum import failures_tolerated, quorum_size
from node.raft.rawnode import RawNode, Ready
from node.raft.state import ReadState, SoftState, StateType
from node.raft.status import Status
from node.raft.storage import MemoryStorage, Storage

__all__ = [
    "NONE",
    "CompactedError",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "DiscardLogger",
    "Entry",
    "EntryType",
    "HardState",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ProposalDropped",
    "RaftError",
    "RaftLogger",
    "RawNode",
    "ReadState",
    "Ready",
    "SnapOutOfDateError",
    "Snapshot",
    "SnapshotMetadata",
    "SnapshotTemporarilyUnavailable",
    "SoftState",
    "StateType",
    "Status",
    "StepLocalMsg",
    "Storage",
    "UnavailableError",
    "failures_tolerated",
    "quorum_size",
]
