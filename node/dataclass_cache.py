"""A member's start compiles its dataclasses' methods once per install, not once per start.

`@dataclass` writes the source of each generated method (`__init__`, `__repr__`, `__eq__`,
a frozen class's `__setattr__`...) and compiles it when the class is defined: ~390
compilations for the ~100 dataclasses a member imports before its Raft node runs, 31 ms
of a 10k-key restart's ~0.2 s of CPU to that point, paid by each of three members that
share two cores while the first election waits for the last of them (issue 17's restart
run). Python keeps a module's bytecode in `__pycache__` but recompiles these every time.

`install()` wraps the one function of CPython 3.11's `dataclasses` that compiles (its
private `_create_fn`) so the code objects come from a marshal file next to the package's
bytecode, keyed by the exact source text: what runs is what `dataclasses` would have
compiled, and a text seen for the first time is compiled as before and added to the file.
The file is written once per new text set (atomically: members start side by side) and
read with one `marshal.loads`. Any other Python version, a changed `_create_fn`, or an
unreadable or unwritable file leaves `dataclasses` as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import marshal
import os
import sys
from typing import Any

CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
CACHE_FILE = os.path.join(CACHE_DIR, f"dataclass-methods.{sys.implementation.cache_tag}.marshal")
# The 3.11 signature this wrapper reproduces; any other leaves dataclasses untouched.
_EXPECTED_PARAMS = ("name", "args", "body", "globals", "locals", "return_type")
_installed: MethodCodeCache | None = None


class MethodCodeCache:
    """Source text of a generated method -> its compiled module code."""

    def __init__(self, path: str = CACHE_FILE) -> None:
        self.path = path
        self.codes: dict[str, Any] = {}
        self.added = 0  # texts compiled in this process, not yet in the file
        self.used: set[str] = set()  # texts this process asked for: what a save keeps
        with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
            with open(path, "rb") as f:
                loaded = marshal.loads(f.read())
            if isinstance(loaded, dict):
                self.codes = loaded

    def code(self, text: str) -> Any:
        self.used.add(text)
        found = self.codes.get(text)
        if found is None:
            found = compile(text, "<string>", "exec")
            self.codes[text] = found
            self.added += 1
        return found

    def save(self) -> bool:
        """Write the file if this process compiled anything new; False if it could not.

        Only the texts this process used are kept: the ones an edited class no longer
        produces leave the file at the next start that compiles anything.
        """
        if not self.added:
            return True
        import tempfile  # only when writing: its imports cost the start ~4 ms

        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=".dc-")
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps({t: c for t, c in self.codes.items() if t in self.used}))
            os.chmod(tmp, 0o644)  # as the bytecode beside it
            os.replace(tmp, self.path)  # a reader sees the old file or the new one
        except OSError:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)
            return False
        self.added = 0
        return True


def _supported() -> bool:
    create = getattr(dataclasses, "_create_fn", None)
    if sys.version_info[:2] != (3, 11) or create is None:
        return False
    return tuple(inspect.signature(create).parameters) == _EXPECTED_PARAMS


def install(cache: MethodCodeCache | None = None) -> MethodCodeCache | None:
    """Serve `dataclasses`' compilations from `cache` (the file by default); None when
    this Python is not the one the wrapper reproduces."""
    if not _supported():
        return None
    cache = cache if cache is not None else MethodCodeCache()
    missing = dataclasses.MISSING

    def create_fn(
        name: str,
        args: list[str],
        body: list[str],
        *,
        globals: dict[str, Any] | None = None,  # the keyword names dataclasses passes
        locals: dict[str, Any] | None = None,
        return_type: Any = missing,
    ) -> Any:
        # The text below is exactly the one CPython 3.11's _create_fn compiles.
        if locals is None:
            locals = {}
        return_annotation = ""
        if return_type is not missing:
            locals["_return_type"] = return_type
            return_annotation = "->_return_type"
        joined_args = ",".join(args)
        joined_body = "\n".join(f"  {b}" for b in body)
        txt = f" def {name}({joined_args}){return_annotation}:\n{joined_body}"
        local_vars = ", ".join(locals.keys())
        txt = f"def __create_fn__({local_vars}):\n{txt}\n return {name}"
        ns: dict[str, Any] = {}
        exec(cache.code(txt), globals, ns)  # as dataclasses does
        return ns["__create_fn__"](**locals)

    dataclasses._create_fn = create_fn  # type: ignore[attr-defined]
    global _installed
    _installed = cache
    return cache


def save_installed() -> None:
    """Write what this process compiled for the next start (once its imports are done)."""
    if _installed is not None:
        _installed.save()
