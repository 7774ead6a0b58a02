"""Evaluate the mixin's jsonnet entry points with the Python binding (no Go tooling)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import _jsonnet

ALERTS_DIR = Path(__file__).resolve().parent
LIB_DIR = ALERTS_DIR / "lib"


def evaluate(entry: str, *, lab: bool = False) -> Any:
    """Evaluate `alerts/lib/<entry>.jsonnet` with the top-level argument `lab`.

    Every entry point is a `function(lab=false)`, so the normal and the compressed-time
    lab variant come from the same files and cannot drift apart.
    """
    path = LIB_DIR / f"{entry}.jsonnet"
    text = _jsonnet.evaluate_file(
        str(path),
        jpathdir=[str(ALERTS_DIR)],
        tla_codes={"lab": "true" if lab else "false"},
    )
    return json.loads(text)
