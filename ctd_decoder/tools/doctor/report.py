"""The doctor's findings and how they are printed: one line per check, or a JSON list."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

OK = "ok"
WARNING = "warning"
ERROR = "error"
STATUSES = (OK, WARNING, ERROR)


@dataclass(frozen=True)
class Finding:
    """One check's outcome: what was checked, how it went, what was found, and the fix in one sentence."""

    check: str
    status: str
    message: str
    fix: str = ""


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


class Report:
    """The findings of one run, in the order the checks made them."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(self, check: str, status: str, message: str, fix: str = "") -> Finding:
        """Record a finding; ``fix`` is required for warnings and errors."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if status != OK and not fix:
            raise ValueError(f"finding {check!r} has no fix")
        finding = Finding(check, status, _one_line(message), _one_line(fix) if status != OK else "")
        self.findings.append(finding)
        return finding

    def ok(self, check: str, message: str) -> Finding:
        """Record a passed check."""
        return self.add(check, OK, message)

    def warning(self, check: str, message: str, fix: str) -> Finding:
        """Record something that may break some pulls, or that could not be checked."""
        return self.add(check, WARNING, message, fix)

    def error(self, check: str, message: str, fix: str) -> Finding:
        """Record something that breaks decryption."""
        return self.add(check, ERROR, message, fix)

    def has_errors(self) -> bool:
        """Tell whether any finding is an error."""
        return any(finding.status == ERROR for finding in self.findings)

    def exit_status(self) -> int:
        """0 when nothing is an error, 1 otherwise."""
        return 1 if self.has_errors() else 0


def render_text(findings: Iterable[Finding]) -> str:
    """Format findings one per line: status, check, finding, and ``fix:`` for warnings and errors."""
    lines = []
    for finding in findings:
        line = f"{finding.status:<7} {finding.check}: {finding.message}"
        if finding.fix:
            line += f" -- fix: {finding.fix}"
        lines.append(line)
    return "\n".join(lines) + ("\n" if lines else "")


def render_json(findings: Iterable[Finding]) -> str:
    """Format findings as a JSON list of ``{check, status, message, fix}`` objects."""
    return json.dumps([asdict(finding) for finding in findings], indent=2) + "\n"
