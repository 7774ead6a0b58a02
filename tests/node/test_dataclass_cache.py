"""node.dataclass_cache: a member's dataclasses get their compiled methods from a file.

Each test runs in a fresh interpreter: `install()` replaces a function of the process's
`dataclasses` module, which the test process itself must keep as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Defines dataclasses of every flavour a member uses, then prints what they do.
PROGRAM = textwrap.dedent(
    """
    import sys
    from node.dataclass_cache import MethodCodeCache, install
    cache = install(MethodCodeCache(sys.argv[1]))
    assert cache is not None
    from dataclasses import dataclass, field

    @dataclass(frozen=True, slots=True)
    class Frozen:
        a: int
        b: bytes = b""

    @dataclass(slots=True, kw_only=True)
    class Plain:
        x: int = 1
        items: list[int] = field(default_factory=list)

    f = Frozen(1, b"z")
    try:
        f.a = 2
        frozen = "mutable"
    except AttributeError:
        frozen = "frozen"
    p = Plain(x=3)
    p.items.append(4)
    print(repr(f), f == Frozen(1, b"z"), hash(f) == hash(Frozen(1, b"z")), frozen, repr(p))
    print("compiled", cache.added)
    cache.save()
    """
)


def _run(cache_file: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(cache_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.splitlines()


pytestmark = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11), reason="the wrapper reproduces CPython 3.11's dataclasses"
)


def test_a_second_start_compiles_nothing_and_its_classes_behave_the_same(tmp_path: Path) -> None:
    cache_file = tmp_path / "methods.marshal"
    first = _run(cache_file)
    assert first[0] == "Frozen(a=1, b=b'z') True True frozen Plain(x=3, items=[4])"
    assert int(first[1].split()[1]) > 0
    assert cache_file.exists()
    second = _run(cache_file)
    assert second == [first[0], "compiled 0"]


def test_a_damaged_cache_file_is_compiled_around_and_rewritten(tmp_path: Path) -> None:
    cache_file = tmp_path / "methods.marshal"
    cache_file.write_bytes(b"\x00not marshal data")
    lines = _run(cache_file)
    assert lines[0] == "Frozen(a=1, b=b'z') True True frozen Plain(x=3, items=[4])"
    assert int(lines[1].split()[1]) > 0
    assert _run(cache_file)[1] == "compiled 0"


def test_an_unwritable_cache_directory_only_costs_the_compilation(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        missing_parent = tmp_path / "file-not-dir"
        missing_parent.write_text("a file where the directory should be")
        cache_file = missing_parent / "methods.marshal"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cache_file = locked / "methods.marshal"
    lines = _run(cache_file)
    assert lines[0] == "Frozen(a=1, b=b'z') True True frozen Plain(x=3, items=[4])"
    assert not cache_file.exists()
    assert int(_run(cache_file)[1].split()[1]) > 0  # compiled again: nothing was cached


def test_another_dataclasses_implementation_is_left_as_it_was() -> None:
    program = textwrap.dedent(
        """
        import dataclasses
        def _create_fn(name, args, body, *, globals=None, locals=None):
            raise AssertionError("not this one")
        dataclasses._create_fn = _create_fn
        from node.dataclass_cache import install
        print(install() is None, dataclasses._create_fn is _create_fn)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_a_save_keeps_only_the_methods_this_process_used(tmp_path: Path) -> None:
    from node.dataclass_cache import MethodCodeCache

    cache_file = tmp_path / "methods.marshal"
    first = MethodCodeCache(str(cache_file))
    first.code("def __create_fn__():\n def old(self):\n  pass\n return old")
    first.code("def __create_fn__():\n def kept(self):\n  pass\n return kept")
    assert first.save()
    second = MethodCodeCache(str(cache_file))
    assert len(second.codes) == 2
    second.code("def __create_fn__():\n def kept(self):\n  pass\n return kept")
    second.code("def __create_fn__():\n def new(self):\n  pass\n return new")
    assert second.save()
    texts = MethodCodeCache(str(cache_file)).codes
    assert sorted(t.split("def ")[2].split("(")[0] for t in texts) == ["kept", "new"]
