"""`python -m dashboards.html`: draw dashboards.html for a cluster label from any Prometheus."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dashboards.html.fetch import HttpSource, parse_duration
from dashboards.html.page import FILENAME, write


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboards.html", description=__doc__)
    p.add_argument("--prometheus", required=True, help="Prometheus URL (http://127.0.0.1:9090)")
    p.add_argument("--cluster", required=True, help="the `cluster` label to draw")
    p.add_argument("--last", default="5m", help="time range ending now (5m)")
    p.add_argument("--start", type=float, default=None, help="range start, Unix seconds")
    p.add_argument("--end", type=float, default=None, help="range end, Unix seconds (now)")
    p.add_argument("--out", type=Path, default=Path(FILENAME), help=f"output ({FILENAME})")
    args = p.parse_args(argv)
    end = args.end if args.end is not None else time.time()
    start = args.start if args.start is not None else end - parse_duration(args.last)
    path = write(args.out, HttpSource(args.prometheus), args.cluster, start, end)
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
