"""Damage one page of a member's SQLite database, the way a flipped disk byte would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

PAGE = 4096  # SQLite's default page size, the store's


def damage_page(db: Path, page: int) -> None:
    """Flip bits of the page's b-tree type byte: SQLite then calls the page malformed."""
    data = bytearray(db.read_bytes())
    data[page * PAGE] ^= 0x55
    db.write_bytes(data)


def page_that_breaks_some_reads(db: Path, scratch: Path, keys: int) -> int:
    """A page whose damage fails some key reads but not all (found on a copy)."""
    good = db.read_bytes()
    for page in range(1, len(good) // PAGE):
        scratch.write_bytes(good)
        damage_page(scratch, page)
        conn = sqlite3.connect(scratch)
        try:
            conn.execute("SELECT name, value FROM meta").fetchall()
            conn.execute("SELECT key, create_rev, mod_rev, version, lease FROM live").fetchall()
            failed = 0
            for i in range(keys):
                try:
                    conn.execute(
                        "SELECT k.value FROM live l JOIN kv k "
                        "ON k.id = (l.mod_rev << 24 | l.mod_sub) WHERE l.key = ?",
                        (f"k{i:03d}".encode(),),
                    ).fetchall()
                except sqlite3.DatabaseError:
                    failed += 1
        except sqlite3.DatabaseError:
            continue  # the open or the key index would fail: not this case
        finally:
            conn.close()
        if 0 < failed < keys:
            return page
    raise AssertionError("no page found whose damage breaks only some reads")
