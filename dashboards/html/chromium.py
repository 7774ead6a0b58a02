"""Headless Chromium (Debian's `chromium`) looking at a dashboards.html: a PNG, or the DOM.

`make screenshot` takes docs/overview.png with it, and the tests read the DOM after the
page's script ran (render.js leaves data-state markers on every panel) and its console
errors. Every call uses a fresh profile and no network, and is bounded in time.

    python -m dashboards.html.chromium PAGE.html OUT.png [--only raftmon-overview]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    # Lets the page's script finish before the DOM is dumped or the picture taken.
    "--virtual-time-budget=15000",
)


@dataclass(frozen=True, slots=True)
class Result:
    stdout: str
    console: list[str]  # the page's console messages and uncaught errors


def find() -> str | None:
    return shutil.which(CHROMIUM)


def _url(page: Path, only: str | None) -> str:
    url = page.resolve().as_uri()
    return f"{url}?only={only}" if only else url


def _run(args: list[str], timeout: float) -> Result:
    binary = find()
    if binary is None:
        raise FileNotFoundError(f"{CHROMIUM} not found: install Debian's chromium (make tools)")
    with tempfile.TemporaryDirectory(prefix="raftmon-chromium-") as profile:
        proc = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return Result(proc.stdout, console)


def dump_dom(page: Path, *, only: str | None = None, timeout: float = 90.0) -> Result:
    """The DOM after the page's scripts ran (`stdout`), and its console lines."""
    return _run(["--window-size=1640,1200", "--dump-dom", _url(page, only)], timeout)


def screenshot(
    page: Path,
    png: Path,
    *,
    only: str | None = None,
    width: int = 1640,
    height: int = 2400,
    timeout: float = 90.0,
) -> Result:
    """A `width` x `height` picture of the page (or of board `only`) into `png`."""
    png.parent.mkdir(parents=True, exist_ok=True)
    return _run(
        [f"--window-size={width},{height}", f"--screenshot={png.resolve()}", _url(page, only)],
        timeout,
    )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboards.html.chromium")
    p.add_argument("page", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--only", default=None, help="one board's uid (raftmon-overview)")
    p.add_argument("--width", type=int, default=1640)
    p.add_argument("--height", type=int, default=2400)
    args = p.parse_args(argv)
    result = screenshot(args.page, args.png, only=args.only, width=args.width, height=args.height)
    for line in result.console:
        sys.stderr.write(line + "\n")
    sys.stdout.write(f"{args.png}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
