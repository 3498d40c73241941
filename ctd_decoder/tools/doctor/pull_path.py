"""Which path this node's pulls take: a decryption payload from containerd, or descriptor recovery.

containerd sends no payload with the CRI's transfer-service pull (2.1+, ``use_local_image_pull =
false``), with the CRI's local pull of 2.0.0-2.0.11, 2.1.0-2.1.6 and 2.2.0-2.2.1 (containerd#12705),
with a key model other than ``node``, and with a plain ``ctr images pull``. The decoder then recovers
the layer's descriptor from containerd's content store: that is information, not a problem, unless
recovery is turned off (or has no node keys to decrypt with), when those pulls fail.
"""

from __future__ import annotations

import contextlib
import io

from ...decoder.recovery.switch import RECOVERY_ENV, RECOVERY_FLAG, turned_off_by
from ...ocicrypt.spec import KEYPROVIDER_CONFIG_ENV

# (first, last) of each containerd release line whose CRI local pull attaches no payload.
NO_PAYLOAD_LOCAL_PULL = (((2, 0, 0), (2, 0, 11)), ((2, 1, 0), (2, 1, 6)), ((2, 2, 0), (2, 2, 1)))
UPGRADE = "containerd 2.1.7+, 2.2.2+ or 2.3+"


def local_pull_sends_no_payload(version: tuple[int, int, int] | None) -> bool:
    """Whether this containerd's CRI local pull leaves the payload out (containerd#12705)."""
    return version is not None and any(first <= version <= last for first, last in NO_PAYLOAD_LOCAL_PULL)


def recovery_blocker(args: list[str], env: dict[str, str], keys_path: str | None) -> str | None:
    """Why descriptor recovery cannot work for a decoder with these args, env and keys path; None if it can."""
    from ...decoder.cold import UsageError, parse_command_line

    flag = None
    with contextlib.suppress(UsageError, SystemExit), contextlib.redirect_stdout(io.StringIO()):
        flag = parse_command_line(args).recovery
    off = turned_off_by(flag, env)
    if off is not None:
        return f"descriptor recovery is turned off ({off})"
    if keys_path is None and not env.get(KEYPROVIDER_CONFIG_ENV):
        return f"descriptor recovery has no node keys (no --decryption-keys-path, no {KEYPROVIDER_CONFIG_ENV})"
    return None


def turn_on_fix(processor_ids: list[str]) -> str:
    """How to let recovery work again."""
    tables = ", ".join(f'[stream_processors."{pid}"]' for pid in processor_ids)
    return (
        f"remove --{RECOVERY_FLAG}=off and {RECOVERY_ENV}=off from {tables} (and give them --decryption-keys-path), or"
    )
