"""The cluster's membership as the backend keeps it (etcd's `members` and `members_removed`).

Membership is replicated state: it changes only when a conf-change entry or a member's
published attributes are applied, in the same SQLite transaction as the applied index,
so after a crash or a snapshot install the table and the applied index agree. A member
id is a uint64; SQLite stores its int64 bit pattern (schema.to_i64).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

from node.mvcc import schema
from node.raft.messages import ConfState


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One member: an unstarted member has no name and no client URLs yet."""

    id: int
    name: str = ""
    peer_urls: tuple[str, ...] = ()
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "peerURLs": list(self.peer_urls),
                "clientURLs": list(self.client_urls),
                "isLearner": self.is_learner,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, member_id: int, text: str) -> MemberRecord:
        body = json.loads(text)
        return cls(
            member_id,
            str(body.get("name", "")),
            tuple(str(u) for u in body.get("peerURLs", ())),
            tuple(str(u) for u in body.get("clientURLs", ())),
            bool(body.get("isLearner", False)),
        )

    def with_attributes(self, name: str, client_urls: tuple[str, ...]) -> MemberRecord:
        return replace(self, name=name, client_urls=client_urls)


def load_members(conn: sqlite3.Connection) -> list[MemberRecord]:
    rows = conn.execute("SELECT id, body FROM member ORDER BY id").fetchall()
    return sorted(
        (MemberRecord.from_json(schema.to_u64(i), body) for i, body in rows), key=lambda m: m.id
    )


def load_removed(conn: sqlite3.Connection) -> set[int]:
    return {schema.to_u64(i) for (i,) in conn.execute("SELECT id FROM member_removed")}


def save_member(conn: sqlite3.Connection, member: MemberRecord) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO member (id, body) VALUES (?, ?)",
        (schema.to_i64(member.id), member.to_json()),
    )


def remove_member(conn: sqlite3.Connection, member_id: int) -> None:
    """Delete the member and remember its id: a removed id can never come back (etcd)."""
    conn.execute("DELETE FROM member WHERE id = ?", (schema.to_i64(member_id),))
    conn.execute(
        "INSERT OR IGNORE INTO member_removed (id) VALUES (?)", (schema.to_i64(member_id),)
    )


def image_conf_state(path: str) -> ConfState | None:
    """The configuration a database file's member table holds (a snapshot image's), or
    None when it has no members (a data dir from before membership was replicated)."""
    conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
    try:
        members = load_members(conn)
    finally:
        conn.close()
    if not members:
        return None
    return ConfState(
        voters=tuple(m.id for m in members if not m.is_learner),
        learners=tuple(m.id for m in members if m.is_learner),
    )
