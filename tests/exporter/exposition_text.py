"""Reading an exposition the way a reviewer reads it: exact names as written.

prometheus_client's parser normalises names (a counter `x` shows up with samples
`x_total`), which would hide exactly the mistakes these tests look for, so the raw
`# TYPE` names and sample names are read here with a regex; the parser is used only for
labels and bucket bounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)")


@dataclass
class RawFamily:
    name: str
    type: str
    help: str = ""
    sample_names: set[str] = field(default_factory=set)
    label_names: set[str] = field(default_factory=set)
    buckets: set[float] = field(default_factory=set)


def raw_families(text: str) -> dict[str, RawFamily]:
    """Families by exposed name, with the sample names written under each TYPE line."""
    families: dict[str, RawFamily] = {}
    helps: dict[str, str] = {}
    current: RawFamily | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP ") :].partition(" ")
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, kind = line[len("# TYPE ") :].split()
            current = families[name] = RawFamily(name, kind, helps.get(name, ""))
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match is not None, f"not a sample line: {line!r}"
            assert current is not None, f"sample before any TYPE line: {line!r}"
            current.sample_names.add(match.group(1))
    # Labels and buckets through the official parser, matched by the samples' names.
    by_sample = {s: fam for fam in families.values() for s in fam.sample_names}
    for parsed in text_string_to_metric_families(text):
        for sample in parsed.samples:
            fam = by_sample.get(sample.name) or by_sample.get(sample.name.removesuffix("_total"))
            assert fam is not None, f"parser sample {sample.name} not in raw text"
            fam.label_names.update(k for k in sample.labels if k not in ("le", "quantile"))
            if sample.name.endswith("_bucket"):
                fam.buckets.add(float(sample.labels["le"]))
    return families
