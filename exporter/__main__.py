"""`python -m exporter`: the metric catalog as a markdown table, one line per family."""

from __future__ import annotations

import sys

from exporter.catalog import CATALOG, LEFT_OUT


def markdown() -> str:
    """One row per exposed family, then the etcd 3.4 families left out and why."""
    rows = [
        "| family | type | labels | source | meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in sorted(CATALOG, key=lambda s: s.name):
        meaning = spec.help.rstrip(".") + (f" ({spec.note})" if spec.note else "")
        origin = "raftmon" if spec.since == "raftmon" else f"etcd {spec.since}"
        labels = ", ".join(spec.labels)
        rows.append(f"| `{spec.name}` | {spec.kind.value} | {labels} | {origin} | {meaning} |")
    rows += ["", "| left out (etcd 3.4) | why |", "|---|---|"]
    rows += [f"| `{name}` | {reason} |" for name, reason in sorted(LEFT_OUT.items())]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    del argv
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
