"""The committed Grafana boards as data: a panel's or an annotation's PromQL, variables filled.

The lab checks what an operator would see: while a fault lasts, a scenario runs the very
expressions of `dashboards/out/*.json` (what Grafana imports, shipped as package data of
`dashboards`) against the lab Prometheus, with Grafana's variables filled in as Grafana
would for this run: `$cluster` = the run's cluster label, `$instance` = all members
(`.*`), `$__rate_interval` = 15 s (4 x the lab's 1 s scrape, rounded up to what the live
dashboard test uses). Reading the JSON, not the grafanalib sources, keeps grafanalib out
of the lab.

A `Ref` names what is looked at: one board's panel by title, or an annotation by name on
every board that carries it (the boards share their annotation set).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

PANEL, ANNOTATION = "panel", "annotation"
RATE_INTERVAL = "15s"

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


class UnknownVariable(ValueError):
    """An expression uses a Grafana variable the lab does not know how to fill."""


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL expression of a board, with where it came from."""

    board: str  # dashboard uid
    title: str  # panel title or annotation name
    ref: str  # the target's refId, or "annotation"
    expr: str


@functools.cache
def boards() -> dict[str, dict[str, Any]]:
    """Board uid -> parsed JSON of every committed dashboard (read once per process)."""
    out = resources.files("dashboards").joinpath("out")
    parsed = (
        json.loads(item.read_text(encoding="utf-8"))
        for item in sorted(out.iterdir(), key=lambda i: i.name)
        if item.name.endswith(".json")
    )
    return {board["uid"]: board for board in parsed}


def iter_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(board_uid: str, title: str) -> list[Query]:
    """The target expressions of the panel titled `title` on board `board_uid`."""
    board = boards()[board_uid]
    for panel in iter_panels(board):
        if panel.get("title") == title:
            return [
                Query(board_uid, title, t.get("refId", ""), t["expr"])
                for t in panel.get("targets", [])
                if "expr" in t
            ]
    raise KeyError(f"no panel {title!r} on {board_uid}")


def all_annotations() -> list[Query]:
    """Every PromQL annotation of every board (Grafana's built-in one has no expression)."""
    return [
        Query(uid, item["name"], ANNOTATION, item["expr"])
        for uid, board in boards().items()
        for item in board.get("annotations", {}).get("list", [])
        if "expr" in item
    ]


def annotation_queries(name: str) -> list[Query]:
    """The annotation called `name` on every board that carries it."""
    found = [q for q in all_annotations() if q.title == name]
    if not found:
        raise KeyError(f"no annotation {name!r} on any board")
    return found


def substitute(expr: str, *, cluster: str, instance: str = ".*", rate: str = RATE_INTERVAL) -> str:
    """Fill Grafana's variables as Grafana would; an unknown variable raises UnknownVariable.

    `$datasource` only ever names the datasource (never inside PromQL); it is accepted
    so a datasource-templated field can be filled too.
    """
    values = {
        "cluster": cluster,
        "instance": instance,
        "__rate_interval": rate,
        "datasource": "prometheus",
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise UnknownVariable(f"unknown variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(fill, expr)


@dataclass(frozen=True, slots=True)
class Ref:
    """What a lab check looks at: a panel of one board, or an annotation on every board."""

    title: str
    board: str = ""  # uid; empty for an annotation
    kind: str = PANEL

    def queries(self) -> list[Query]:
        if self.kind == ANNOTATION:
            return annotation_queries(self.title)
        return panel_queries(self.board, self.title)

    def keys(self) -> tuple[tuple[str, str], ...]:
        """(board uid, title) of every board item this ref covers."""
        return tuple(sorted({(q.board, q.title) for q in self.queries()}))

    def __str__(self) -> str:
        if self.kind == ANNOTATION:
            return f"annotation {self.title!r}"
        return repr(self.title)


def panel(board: str, title: str) -> Ref:
    return Ref(title, board, PANEL)


def annotation(name: str) -> Ref:
    return Ref(name, "", ANNOTATION)
