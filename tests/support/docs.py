"""The documentation set (README.md, docs/, packaging/ READMEs) as the tests that check it against the code
read it: one file by its repository path, whitespace flattened so that line breaks do not matter."""

from __future__ import annotations

import re

from support.repo import REPO

README = "README.md"
BENCHMARKS = "docs/benchmarks.md"
CLUSTER_ROLLOUT = "docs/cluster-rollout.md"
DEVELOPMENT = "docs/development.md"
DIFFERENTIAL_TESTING = "docs/differential-testing.md"
PACKAGING_README = "packaging/README.md"
NODE_README = "packaging/NODE-README.md"
DOC_SET = (README, BENCHMARKS, CLUSTER_ROLLOUT, DEVELOPMENT, DIFFERENTIAL_TESTING, PACKAGING_README, NODE_README)

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def flat(text: str) -> str:
    """``text`` with every run of whitespace made one space."""
    return " ".join(text.split())


def doc_text(name: str) -> str:
    """The text of the document at repository path ``name``, flattened."""
    return flat((REPO / name).read_text())


def section(name: str, heading: str) -> str:
    """The section of document ``name`` that starts with the line ``heading`` (e.g. ``## Warm start``), up to
    the next heading of the same or a higher level, flattened."""
    text = (REPO / name).read_text()
    start = text.index(f"\n{heading}") + 1 if not text.startswith(heading) else 0
    level = heading.split(" ", 1)[0]
    higher = re.compile(rf"(?m)^#{{1,{len(level)}}} ")
    ends = [match.start() for match in higher.finditer(text) if match.start() > start]
    return flat(text[start : ends[0] if ends else len(text)])


def relative_links(name: str) -> list[str]:
    """The targets of the Markdown links of document ``name`` that are neither URLs nor in-page anchors."""
    targets = _LINK.findall((REPO / name).read_text())
    return [target for target in targets if not target.startswith(("http://", "https://", "#", "mailto:"))]
