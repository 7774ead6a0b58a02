"""What a member's start imports: only what its Raft node needs before the first election.

Three members restarted together share two cores, and the first write waits for the last
of them to connect its peers (issue 17's restart run), so every module the start imports
is paid three times on the critical path. These tests pin imports the start once paid
for nothing.
"""

from __future__ import annotations

import subprocess
import sys

from node import imagesum

START = "import sys, node.member, node.member.serve, node.mvcc.store, node.wal; "


def _imported_at_start(modules: list[str]) -> dict[str, bool]:
    code = START + f"print(*[m in sys.modules for m in {modules!r}])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return dict(zip(modules, (word == "True" for word in out.stdout.split()), strict=True))


def test_the_start_leaves_out_the_crc32c_package_and_distribution_metadata() -> None:
    # crc32c's package import reads the installed distributions' metadata (~20 ms)
    assert _imported_at_start(["crc32c", "importlib.metadata"]) == {
        "crc32c": False,
        "importlib.metadata": False,
    }


def test_the_deferred_crc32c_sums_the_standard_check_value() -> None:
    # "123456789" is the CRC catalogue's check input; 0xE3069283 is CRC-32C's check value
    assert imagesum.default()(b"123456789", 0) == 0xE3069283
    assert imagesum.by_name(imagesum.CRC32C)(b"6789", imagesum.default()(b"12345", 0)) == 0xE3069283


def test_the_start_leaves_out_modules_only_rare_paths_use() -> None:
    # shutil (with bz2 and lzma) copies files across filesystems, tempfile names a client
    # snapshot, uuid (with platform) named a received snapshot: ~8 ms of every start
    rare = ["shutil", "tempfile", "uuid", "platform"]
    assert _imported_at_start(rare) == dict.fromkeys(rare, False)
