"""Rule 1 of node/raft: no I/O, no clock, no threads, no unseeded randomness (checked by ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import node.raft

ALLOWED = {
    "__future__",
    "abc",
    "bisect",
    "collections",
    "dataclasses",
    "enum",
    "functools",
    "itertools",
    "operator",
    "random",
    "struct",  # pure byte packing (ConfChange.encode); no I/O
    "typing",
}
PACKAGE = Path(node.raft.__file__).parent
# Module-level functions of `random` draw from the hidden global generator: forbidden.
RANDOM_ALLOWED_ATTRS = {"Random"}


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            found.extend((n.lineno, a.name) for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                found.append((n.lineno, "node.raft"))  # relative: inside the package
            else:
                found.append((n.lineno, n.module or ""))
                if n.module == "random":
                    found.extend(
                        (n.lineno, f"random.{a.name}")
                        for a in n.names
                        if a.name not in RANDOM_ALLOWED_ATTRS
                    )
    return found


def test_core_imports_only_pure_modules() -> None:
    bad = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert files
    for f in files:
        tree = ast.parse(f.read_text(), str(f))
        for line, mod in _imports(tree):
            top = mod.split(".")[0]
            if mod.startswith("random."):
                bad.append(f"{f}:{line}: from random import {mod[7:]}")
            elif mod == "node.raft" or mod.startswith("node.raft."):
                continue
            elif top not in ALLOWED:
                bad.append(f"{f}:{line}: import {mod}")
        for n in ast.walk(tree):
            # random.random(), random.randint(...) etc. use the unseeded global generator.
            if (
                isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name)
                and n.value.id == "random"
                and n.attr not in RANDOM_ALLOWED_ATTRS
            ):
                bad.append(f"{f}:{n.lineno}: random.{n.attr} (use the injected Config.rng)")
            if (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name)
                and n.func.id
                in (
                    "open",
                    "print",
                    "input",
                    "__import__",
                    "exec",
                    "eval",
                )
            ):
                bad.append(f"{f}:{n.lineno}: {n.func.id}() performs I/O or dynamic code")
    assert not bad, "node/raft must stay pure:\n" + "\n".join(bad)


def test_purity_checker_catches_forbidden_imports() -> None:
    tree = ast.parse("import time\nfrom os import path\nfrom random import randint\n")
    mods = [m for _, m in _imports(tree)]
    assert mods == ["time", "os", "random", "random.randint"]
