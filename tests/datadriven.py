"""A small datadriven test harness (the format of cockroachdb/datadriven, used by etcd-raft).

A file is a sequence of cases: one command line (`name arg key=val key=(a,b)`), a `----`
line, the expected output, and a blank line. Output containing blank lines is fenced by a
double separator (`----` / `----` before and after). Lines starting with `#` outside a case
are comments. With `rewrite=True` (pytest `--rewrite`) the file is regenerated from the
actual output instead of compared.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

_ARG = re.compile(r"(\w[\w-]*)(?:=(\([^)]*\)|\S+))?")


@dataclass(slots=True)
class CmdArg:
    key: str
    vals: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TestData:
    pos: str  # file:line of the command, for failure messages
    cmd: str
    args: list[CmdArg]
    expected: str

    def arg(self, key: str, default: str | None = None) -> str | None:
        for a in self.args:
            if a.key == key:
                return a.vals[0] if a.vals else ""
        return default

    def arg_list(self, key: str) -> list[str]:
        for a in self.args:
            if a.key == key:
                return a.vals
        return []

    def positional(self) -> list[str]:
        return [a.key for a in self.args if not a.vals]


def parse_line(line: str) -> tuple[str, list[CmdArg]]:
    parts = _ARG.findall(line)
    if not parts:
        raise ValueError(f"empty command line: {line!r}")
    cmd = parts[0][0]
    args = []
    for key, val in parts[1:]:
        if val.startswith("("):
            vals = [v.strip() for v in val[1:-1].split(",") if v.strip()]
        elif val:
            vals = [val]
        else:
            vals = []
        args.append(CmdArg(key, vals))
    return cmd, args


@dataclass(slots=True)
class _Case:
    data: TestData
    start: int  # first line index of the case
    end: int  # line index just after the case


def parse(path: Path) -> tuple[list[str], list[_Case]]:
    lines = path.read_text().split("\n")
    cases: list[_Case] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            i += 1
            continue
        start = i
        cmd, args = parse_line(line)
        i += 1
        if i >= len(lines) or lines[i] != "----":
            raise ValueError(f"{path}:{start + 1}: expected ---- after the command")
        i += 1
        out: list[str] = []
        if i < len(lines) and lines[i] == "----":  # fenced output may contain blank lines
            i += 1
            while i + 1 < len(lines) and not (lines[i] == "----" and lines[i + 1] == "----"):
                out.append(lines[i])
                i += 1
            i += 2
        else:
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
        pos = f"{path}:{start + 1}"
        cases.append(_Case(TestData(pos, cmd, args, "\n".join(out)), start, i))
    return lines, cases


def _render(output: str) -> list[str]:
    if any(not ln.strip() for ln in output.split("\n")):
        return ["----", "----", *output.split("\n"), "----", "----"]
    return ["----", *output.split("\n")]


def run_test(path: Path, func: Callable[[TestData], str], rewrite: bool = False) -> None:
    """Run every case of `path` through `func`, comparing (or rewriting) the outputs."""
    lines, cases = parse(path)
    new: list[str] = []
    prev = 0
    for case in cases:
        actual = func(case.data).rstrip("\n") or "ok"
        if rewrite:
            new.extend(lines[prev : case.start + 1])
            new.extend(_render(actual))
            prev = case.end
            continue
        if actual != case.data.expected:
            diff = "\n".join(
                difflib.unified_diff(
                    case.data.expected.split("\n"),
                    actual.split("\n"),
                    "expected",
                    "actual",
                    lineterm="",
                )
            )
            raise AssertionError(
                f"{case.data.pos}: output of `{lines[case.start]}` differs "
                f"(regenerate with --rewrite after checking the diff):\n{diff}"
            )
    if rewrite:
        new.extend(lines[prev:])
        text = "\n".join(new).rstrip("\n") + "\n"
        path.write_text(text)
