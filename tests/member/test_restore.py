"""`raftmon snapshot restore|status`: etcdctl's flags and words, raftmon's database files."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.config import parse_config
from node.member.restore import RestoreError, restore, snapshot_status
from node.member.snapshot_cli import format_status, main
from node.mvcc import codec
from node.mvcc import requests as rq
from node.mvcc.store import KVStore
from node.server.snapshot_stream import stream_snapshot

CLUSTER = "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2381,m3=http://127.0.0.1:2382"
TOKEN = "restored-cluster"


def _apply(store: KVStore, *reqs: object) -> None:
    first = store.applied_index() + 1
    entries = [(first + i, codec.encode_request(first + i, r)) for i, r in enumerate(reqs)]
    for result in store.apply_batch(entries):
        assert result.error is None, result.error


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A snapshot file as `etcdctl snapshot save` writes it: database + sha256."""

    async def save() -> bytes:
        store = KVStore.open(str(tmp_path / "src" / "db"))
        try:
            _apply(
                store,
                *(rq.PutRequest(key=b"k%03d" % i, value=b"v" * 500) for i in range(60)),
                rq.LeaseGrantRequest(ttl=300, id=42),
                rq.PutRequest(key=b"leased", value=b"x", lease=42),
                rq.DeleteRangeRequest(key=b"k000"),
            )
            return b"".join([c.blob async for c in stream_snapshot(store, str(tmp_path))])
        finally:
            store.close()

    path = tmp_path / "snap.db"
    path.write_bytes(asyncio.run(save()))
    return path


def _restore(snapshot: Path, data_dir: Path, name: str = "m1", **kw: bool) -> None:
    restore(
        str(snapshot),
        name=name,
        data_dir=str(data_dir),
        initial_cluster=CLUSTER,
        initial_cluster_token=TOKEN,
        initial_advertise_peer_urls=dict(p.split("=") for p in CLUSTER.split(","))[name],
        **kw,
    )


def test_restore_writes_a_data_dir_with_the_store_and_a_fresh_log(
    saved: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "m2.etcd"
    _restore(saved, data_dir, "m2")
    assert sorted(os.listdir(data_dir / "member")) == ["snap", "wal"]
    assert os.listdir(data_dir / "member" / "wal")
    store = KVStore.open(str(data_dir / "member" / "snap" / "db"))
    try:
        assert store.applied_index() == 0  # the new cluster's log starts at index 1
        assert store.current_revision() == 63
        assert store.get(b"k000") is None
        assert store.get(b"k059") is not None
        assert store.lease_ttl(42) == 300
        assert store.lease_keys(42) == [b"leased"]
    finally:
        store.close()
    # the member started with the same flags opens it under the ids those flags give
    cfg = parse_config(
        [
            "--name=m2",
            f"--data-dir={data_dir}",
            f"--initial-cluster={CLUSTER}",
            f"--initial-cluster-token={TOKEN}",
        ],
        environ={},
    )
    wal_file = next((data_dir / "member" / "wal").iterdir()).read_bytes()
    assert f"{cfg.member_id:x}/{cfg.cluster_id:x}".encode() in wal_file


def test_truncated_snapshot_is_refused_and_leaves_nothing(saved: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.db"
    cut.write_bytes(saved.read_bytes()[:-32])
    with pytest.raises(RestoreError, match=r"^snapshot missing hash but --skip-hash-check=false$"):
        _restore(cut, tmp_path / "out")
    cut.write_bytes(saved.read_bytes()[:-1000])
    with pytest.raises(RestoreError, match="snapshot missing hash"):
        _restore(cut, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cut.db", "snap.db", "src"])


def test_corrupted_snapshot_is_refused_with_both_hashes(saved: Path, tmp_path: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[5000] ^= 0xFF
    bad = tmp_path / "bad.db"
    bad.write_bytes(bytes(data))
    with pytest.raises(
        RestoreError, match=r"^expected sha256 \[\d+( \d+){31}\], got \[\d+( \d+){31}\]$"
    ):
        _restore(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_database_copied_from_a_data_dir_needs_skip_hash_check(saved: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.db"
    raw.write_bytes(saved.read_bytes()[:-32])
    with pytest.raises(RestoreError, match="missing hash"):
        _restore(raw, tmp_path / "out")
    _restore(raw, tmp_path / "out", skip_hash_check=True)
    assert (tmp_path / "out" / "member" / "snap" / "db").exists()


def test_refusals_in_etcds_words(saved: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(RestoreError, match=f'^data-dir "{tmp_path / "taken"}" exists$'):
        _restore(saved, tmp_path / "taken")
    with pytest.raises(RestoreError, match="not in --initial-cluster"):
        restore(
            str(saved),
            name="m9",
            data_dir=str(tmp_path / "m9"),
            initial_cluster=CLUSTER,
            initial_cluster_token=TOKEN,
            initial_advertise_peer_urls="http://127.0.0.1:2389",
        )
    not_db = tmp_path / "bolt.db"
    not_db.write_bytes(b"\x00" * 4096 + b"\x01" * 32)
    with pytest.raises(RestoreError, match="not a raftmon database"):
        _restore(not_db, tmp_path / "out", skip_hash_check=True)
    assert not (tmp_path / "out").exists()


def test_status_formats_are_etcdctls(saved: Path) -> None:
    st = snapshot_status(str(saved))
    assert st.revision == 63
    assert st.total_size == saved.stat().st_size - 32
    simple = format_status(st, "simple").split(", ")
    assert simple[0] == f"{st.hash:x}"
    assert simple[1:3] == ["63", str(st.total_key)]
    assert simple[3].endswith(" kB")
    assert json.loads(format_status(st, "json")) == {
        "hash": st.hash,
        "revision": 63,
        "totalKey": st.total_key,
        "totalSize": st.total_size,
    }
    table = format_status(st, "table").splitlines()
    assert table[1] == "|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |"
    assert table[0] == table[2] == table[4] == "+----------+----------+------------+------------+"
    assert table[3].startswith("| ")
    assert table[3].endswith(" kB |")


def test_status_hash_is_of_the_content_not_the_file(saved: Path, tmp_path: Path) -> None:
    before = snapshot_status(str(saved))
    _restore(saved, tmp_path / "out")
    db = tmp_path / "out" / "member" / "snap" / "db"
    adopted = snapshot_status(str(db))  # no trailer: status reads it all the same
    assert adopted.revision == before.revision
    assert adopted.total_key == before.total_key
    assert adopted.hash != before.hash  # the applied index changed


def test_main_exit_codes_and_messages(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the command logs as the member does; here that would replace pytest's log handlers
    monkeypatch.setattr("node.member.snapshot_cli.configure", lambda level: None)
    assert main(["status"]) == 128
    assert "Error: snapshot status requires exactly one argument" in capsys.readouterr().err
    assert main(["status", str(tmp_path / "none.db")]) == 1
    assert "Error: stat " in capsys.readouterr().err
    assert main(["status", "-w", "json", str(saved)]) == 0
    assert json.loads(capsys.readouterr().out)["revision"] == 63
    cut = tmp_path / "cut.db"
    cut.write_bytes(saved.read_bytes()[:-32])
    assert main(["restore", str(cut), f"--data-dir={tmp_path / 'x'}"]) == 1
    assert capsys.readouterr().err.endswith(
        "Error: snapshot missing hash but --skip-hash-check=false\n"
    )
    args = ["restore", str(cut), f"--data-dir={tmp_path / 'x'}", "--skip-hash-check=true"]
    assert main(args) == 0
    assert (tmp_path / "x" / "member" / "wal").is_dir()


def test_raftmon_snapshot_runs_the_members_command(saved: Path, tmp_path: Path) -> None:
    from lab.cli import main as raftmon

    assert raftmon(["snapshot", "status", str(saved)]) == 0
    out = subprocess.run(
        [sys.executable, "-m", "lab", "snapshot", "status", "-w", "json", str(saved)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout)["revision"] == 63
