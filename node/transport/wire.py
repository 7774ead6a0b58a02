"""HTTP paths and headers the peer endpoints agree on, in one place for both sides."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

STREAM_PATH = "/raft/stream"  # GET + Upgrade: tcp, answered 101; then frames for the stream's life
PROBING_PATH = "/raft/probing"  # GET, answered at once: the RTT probe
SNAPSHOT_PATH = "/raft/snapshot"  # POST, one MsgSnap frame + db image + checksum trailer

HDR_FROM = "X-Raftmon-From"
HDR_TO = "X-Raftmon-To"
HDR_CLUSTER_ID = "X-Raftmon-Cluster-ID"
HDR_PROTOCOL = "X-Raftmon-Protocol"
HDR_SNAPSHOT_SIZE = "X-Raftmon-Snapshot-Size"
# The kind of the image checksum trailer (node.imagesum); absent: CRC-32 (IEEE), an older sender
HDR_SNAPSHOT_CHECKSUM = "X-Raftmon-Snapshot-Checksum"

# Bumped whenever codec.py's layout changes: a peer speaking another version is refused
# with 412 instead of being fed frames it would misparse.
PROTOCOL_VERSION = "2"  # 2: streams are upgraded connections (1 was a chunked POST body)

# The Upgrade token of a stream. aiohttp's parsers hand over the raw connection only for
# "websocket" and "tcp"; "tcp" is the generic one (Docker's attach uses it too).
STREAM_UPGRADE = "tcp"


def id_hex(member_id: int) -> str:
    """Member and cluster ids on the wire and in logs: lowercase hex, as etcd prints them."""
    return f"{member_id:x}"


def parse_id(value: str | None) -> int | None:
    """Inverse of `id_hex`; None when the header is missing or not hex."""
    if not value:
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


def stream_headers(local_id: int, to: int, cluster_id: int) -> dict[str, str]:
    """Headers every peer request carries so the receiver can refuse the wrong cluster."""
    return {
        HDR_FROM: id_hex(local_id),
        HDR_TO: id_hex(to),
        HDR_CLUSTER_ID: id_hex(cluster_id),
        HDR_PROTOCOL: PROTOCOL_VERSION,
    }


def upgrade_headers(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the two that ask for the connection to become a raw frame stream."""
    return {**headers, "Connection": "Upgrade", "Upgrade": STREAM_UPGRADE}


def asks_for_upgrade(headers: Mapping[str, str]) -> bool:
    """True when a request asks for our stream upgrade (both headers, as aiohttp requires)."""
    tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
    return "upgrade" in tokens and headers.get("Upgrade", "").lower() == STREAM_UPGRADE
