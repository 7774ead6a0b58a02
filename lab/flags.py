"""Flags `raftmon demo` and `raftmon lab` share, declared once; each command words its help.

Both write everything under one folder (`--data-dir`), can run their clusters on mTLS
(`--tls`), print a live timeline unless `--quiet`, and log at `--log-level`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def add_data_dir(parser: argparse.ArgumentParser, default: str, help: str) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(default), help=help)


def add_run_flags(parser: argparse.ArgumentParser, *, tls_help: str, quiet_help: str) -> None:
    """`--tls`, `--quiet` and `--log-level`, in that order (the end of both commands' help)."""
    parser.add_argument("--tls", action="store_true", help=tls_help)
    parser.add_argument("--quiet", action="store_true", help=quiet_help)
    parser.add_argument("--log-level", default="WARNING")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
