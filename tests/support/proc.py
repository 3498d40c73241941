"""What /proc says of a process: the one reader of ``/proc/PID/stat`` and ``/proc/PID/status`` for the tests."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` from field 3 (the state) on, so that ``[0]`` is the state; [] once it is gone.

    Split after the last ``)``: the command name before it may hold spaces and parentheses.
    """
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return []


def state(pid: int) -> str:
    """The process's state letter (``R``, ``S``, ``Z`` ...); "" once it is gone."""
    fields = stat_fields(pid)
    return fields[0] if fields else ""


def status_field(pid: int, name: str) -> str:
    """The first word of the ``name:`` line of ``/proc/PID/status`` (its number, without a unit); raise
    LookupError if there is no such line."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split()[1]
    raise LookupError(f"no {name} in /proc/{pid}/status")


def tracer(pid: int) -> int:
    """The pid of the process tracing it (``TracerPid``; 0: none)."""
    return int(status_field(pid, "TracerPid"))


def minor_faults(pid: int) -> int:
    """The minor page faults the process has taken (field 10); raise LookupError once it is gone."""
    fields = stat_fields(pid)
    if not fields:
        raise LookupError(f"process {pid} is gone")
    return int(fields[7])
