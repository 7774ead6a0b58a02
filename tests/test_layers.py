"""The layers of the code base, in one place, and a walk of every import that checks them.

A member is layered like etcd's server: the pure Raft core at the bottom, the WAL, the
MVCC store and the peer transport on it, the server (Ready loop, apply, read index,
snapshots, KV service) above them, the front ends (`node/api`) above the server, and the
member process on top. Data flows one way; an import that runs upward or in a circle
would let a lower layer depend on what it serves. The programs beside the member (the
lab, the load generator, the exporter, the mixin and the dashboards) start members as
processes or describe them; none imports the member's code.

The README's architecture section shows `LAYER_TABLE` verbatim, so the picture a
reader sees is the graph this test walks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[1]

# Bottom to top. A module may import from its own package and from lower layers. Packages
# that share a layer are siblings: neither imports the other.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "node.errors",
            "node.duration",
            "node.fsutil",
            "node.imagesum",
            "node.fairness",
            "node.tls",
            "node.logfmt",
            "node.dataclass_cache",
        ),
    ),
    ("raft", ("node.raft",)),
    ("storage", ("node.wal", "node.mvcc", "node.transport")),
    ("config", ("node.config",)),
    ("server", ("node.server",)),
    ("api", ("node.api",)),
    ("member", ("node.member",)),
    ("main", ("node.__main__",)),
]
# Beside the member: they run members as processes or describe them, never import them.
BESIDE = ("lab", "loadgen", "exporter", "alerts", "dashboards")
# Below everything, for the member and the programs beside it alike: etcd's wire schema
# (.proto files and the stubs made from them), which imports nothing of ours.
SHARED = ("etcdproto",)
# The one place a member reaches beside itself: it serves its metrics through the exporter.
MEMBER_USES = {"node.member": ("exporter",)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in ("node", *BESIDE, *SHARED):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "out" in path.relative_to(ROOT).parts:
                continue
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _shown(module: str) -> str:
    """How a layer's package or module is written in the README: `node/raft/`, `node/tls.py`."""
    path = module.replace(".", "/")
    return path + ("/" if (ROOT / path).is_dir() else ".py")


LAYER_TABLE = "\n".join(
    [f"{name:<8} {'  '.join(_shown(p) for p in pkgs)}" for name, pkgs in LAYERS[::-1]]
    + [f"{'beside':<8} {'  '.join(p + '/' for p in BESIDE)}"]
    + [f"{'schema':<8} {'  '.join(p + '/' for p in SHARED)}"]
)


def _resolve(name: str) -> str | None:
    """The first-party module an import names, or None for the standard library and others."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """Every first-party module `module` imports, at any depth of its code (lazy ones too)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                drop = node.level - 1 if is_package else node.level
                anchor = anchor[: len(anchor) - drop] if drop else anchor
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule when there is one.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                yield node.lineno, resolved


GRAPH: dict[str, list[tuple[int, str]]] = {
    m: sorted(set(_imports(m, p))) for m, p in MODULES.items()
}


def _home(module: str) -> tuple[int, str] | None:
    """(layer index, package) of a member module: the longest package prefix that owns it."""
    if module == "node":  # the package itself: a docstring, below everything
        return 0, "node"
    best: tuple[int, str] | None = None
    for index, (_, packages) in enumerate(LAYERS):
        for package in packages:
            owns = module == package or module.startswith(package + ".")
            if owns and (best is None or len(package) > len(best[1])):
                best = (index, package)
    return best


def _top(module: str) -> str:
    return module.split(".")[0]


def _violation(source: str, target: str) -> str | None:
    if _top(source) in SHARED:
        return None if _top(target) == _top(source) else "the wire schema imports our code"
    if _top(target) in SHARED:
        return None
    if _top(source) in BESIDE:
        return "a program beside the member imports it" if _top(target) == "node" else None
    if _top(target) in BESIDE:
        allowed = [p for m, ps in MEMBER_USES.items() if source.startswith(m) for p in ps]
        return None if _top(target) in allowed else f"the member's {source} imports {_top(target)}/"
    src, dst = _home(source), _home(target)
    if src is None or dst is None:
        return "a module with no layer (see test_every_member_module_has_a_layer)"
    if src[1] == dst[1]:
        return None
    if dst[0] > src[0]:
        return f"upward: {LAYERS[src[0]][0]} imports {LAYERS[dst[0]][0]}"
    if dst[0] == src[0]:
        return f"sideways: {src[1]} and {dst[1]} are siblings"
    return None


def test_every_member_module_has_a_layer() -> None:
    assert [m for m in MODULES if _top(m) == "node" and _home(m) is None] == []


def test_no_import_runs_upward_or_sideways() -> None:
    bad = []
    for source, edges in GRAPH.items():
        for line, target in edges:
            why = _violation(source, target)
            if why:
                bad.append(f"{MODULES[source].relative_to(ROOT)}:{line}: imports {target} ({why})")
    assert bad == []


def test_no_imports_run_in_a_circle() -> None:
    """Tarjan's strongly connected components over the whole graph; every one must be single."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep package cannot exhaust Python's recursion limit.
        work = [(start, iter(GRAPH[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, edges = work[-1]
            for _, target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(GRAPH[target])))
                    break
                if target in on_stack:
                    low[module] = min(low[module], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert circles == []


def test_the_readme_shows_these_layers() -> None:
    shown = LAYER_TABLE in (ROOT / "README.md").read_text()
    assert shown, f"README.md's architecture section must show:\n{LAYER_TABLE}"
