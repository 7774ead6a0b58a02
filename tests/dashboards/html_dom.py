"""Reading a dashboards.html back: its embedded frames, and the DOM Chromium dumped.

render.js marks every panel (`<section class="panel" data-board data-title data-type
data-state data-series>`) and <body> (`data-render`, `data-panels`, `data-errors`); this
collects those markers and what each panel holds (canvases, tables).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

_PAGE_DATA = re.compile(r'<script id="page-data" type="application/json">(.*?)</script>', re.S)


def page_data(text: str) -> dict[str, Any]:
    """The frames page.py embedded (what the panels were drawn from)."""
    match = _PAGE_DATA.search(text)
    assert match, "no page data in the page"
    data: dict[str, Any] = json.loads(match.group(1).replace("<\\/", "</"))
    return data


@dataclass
class Panel:
    attrs: dict[str, str]
    tags: dict[str, int] = field(default_factory=dict)  # descendant tag -> count

    @property
    def key(self) -> tuple[str, str]:
        return self.attrs.get("data-board", ""), self.attrs.get("data-title", "")


class Dom(HTMLParser):
    """Panels (with their descendants' tags), <body>'s attributes and #render-errors."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.panels: list[Panel] = []
        self.errors = ""
        self._stack: list[tuple[str, Panel | None]] = []
        self._in_errors = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = values
        current = next((p for _, p in reversed(self._stack) if p is not None), None)
        if current is not None:
            current.tags[tag] = current.tags.get(tag, 0) + 1
        panel = None
        if tag == "section" and "panel" in values.get("class", "").split():
            panel = Panel(values)
            self.panels.append(panel)
        self._in_errors = values.get("id") == "render-errors"
        if tag not in ("br", "img", "input", "meta", "link", "hr", "col"):
            self._stack.append((tag, panel))

    def handle_endtag(self, tag: str) -> None:
        self._in_errors = False
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_errors:
            self.errors += data
