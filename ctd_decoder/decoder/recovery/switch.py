"""The operator's switch for descriptor recovery: a decoder flag and an environment variable."""

from __future__ import annotations

from collections.abc import Mapping

RECOVERY_ENV = "CTD_DECODER_RECOVERY"
RECOVERY_FLAG = "descriptor-recovery"
ON = "on"
OFF = "off"
VALUES = (ON, OFF)


def invalid_value(value: str) -> str | None:
    """Why ``value`` is no setting of the switch, or None if it is one."""
    if value in VALUES:
        return None
    return f'invalid value "{value}" for -{RECOVERY_FLAG}: use {ON} or {OFF}'


def turned_off_by(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """What turned recovery off (the flag or the variable), or None if it is on.

    Off wins: either one saying ``off`` turns it off. An unknown value of the variable counts as off, so a
    typo never silently turns on what an operator meant to turn off.
    """
    if flag == OFF:
        return f"--{RECOVERY_FLAG}={OFF}"
    value = environ.get(RECOVERY_ENV)
    if value is not None and value.strip().lower() != ON:
        return f"{RECOVERY_ENV}={value[:20]}"
    return None
