"""loadgen/README.md: every example is a valid command, and every flag has an example."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from loadgen.cli import build_parser, config_from_args, go_style_booleans

README = Path(__file__).resolve().parents[2] / "loadgen" / "README.md"
WORKLOADS = ("put", "range", "txn-put", "mixed", "watch", "lease-keepalive")


def examples() -> list[str]:
    """Every `raftmon load ...` command of the README: inline code and sh blocks."""
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"`(raftmon load [^`]+)`", text)
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        found += [line.strip() for line in joined.splitlines() if "raftmon load " in line]
    return found


def argv_of(example: str) -> list[str]:
    words = shlex.split(example)
    start = words.index("load") + 1
    shell = next((i for i, w in enumerate(words) if w in (">", "|")), len(words))
    return words[start:shell]


def options_of(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """{"": the global long options, workload: the options only it accepts}, help aside."""

    def longs(p: argparse.ArgumentParser) -> set[str]:
        return {o for a in p._actions for o in a.option_strings if o.startswith("--")}

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    global_flags = longs(parser) - {"--help"}
    out = {"": global_flags}
    for name, p in sub.choices.items():
        out[name] = longs(p) - global_flags - {"--help"}
    return out


def test_the_readme_has_examples() -> None:
    assert len(examples()) > 30


@pytest.mark.parametrize("example", examples())
def test_every_readme_example_is_a_valid_command(example: str) -> None:
    try:
        args = build_parser().parse_args(go_style_booleans(argv_of(example)))
    except SystemExit as exc:  # argparse refuses it (and printed why)
        pytest.fail(f"argparse refused {example!r} (exit {exc.code})")
    config_from_args(args).validate()


def test_every_flag_and_workload_has_an_example() -> None:
    used = [argv_of(e) for e in examples()]
    workloads = {w for argv in used for w in argv if w in WORKLOADS}
    assert workloads == set(WORKLOADS)
    options = options_of(build_parser())

    def uses(argv: list[str], flag: str) -> bool:
        return any(w == flag or w.startswith(flag + "=") for w in argv)

    for flag in sorted(options[""]):
        assert any(uses(argv, flag) for argv in used), f"no README example uses {flag}"
    for flag in sorted(set().union(*(options[w] for w in WORKLOADS))):
        takers = {w for w in WORKLOADS if flag in options[w]}
        assert any(uses(argv, flag) and takers & set(argv) for argv in used), (
            f"no README example uses {flag} (a flag of {sorted(takers)})"
        )
