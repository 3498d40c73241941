"""Idle CPU only, for the work of the warm server that no client waits for: adding a child to the pool.

A refill (the fork, the new child's set-up and its rehearsal) comes right after a layer, when the client
reads its status and containerd starts on the next layer. At the server's own priority it took a CPU
from them: on a 2-core node a 4 KiB layer took 1.7 ms longer. So the server forks a waiting child at
``SCHED_IDLE`` (which runs only on a CPU nothing else wants, and yields to anything that wakes), the child
inherits it for its set-up and rehearsal and returns to the server's policy before it waits for a client.

Only a process with ``CAP_SYS_NICE`` (as under systemd) may leave ``SCHED_IDLE`` again; without it all of
this runs at the server's own priority. The server forks at idle priority only while a child waits for
clients: in the fork it takes no client itself, and on a saturated node an idle fork may take a while.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_CAP_SYS_NICE = 23


class PriorityError(Exception):
    """This process could not come back from ``SCHED_IDLE``: it must not go on serving layers."""


class Policy:
    """A scheduling policy and its parameter, as ``sched_getscheduler`` and ``sched_getparam`` give them."""

    __slots__ = ("param", "policy")

    def __init__(self, policy: int, param: os.sched_param) -> None:
        self.policy = policy
        self.param = param

    @classmethod
    def of_this_process(cls) -> Policy:
        """This process's policy now."""
        return cls(os.sched_getscheduler(0), os.sched_getparam(0))

    def apply(self) -> None:
        """Make it this process's policy; raise OSError."""
        os.sched_setscheduler(0, self.policy, self.param)


def _has_cap_sys_nice() -> bool:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    except (OSError, ValueError):
        pass
    return False


def serving_policy() -> Policy | None:
    """The policy this process serves layers at, if it may come back to it from ``SCHED_IDLE``
    (``CAP_SYS_NICE``); None if it may not (then nothing runs at idle priority)."""
    policy = Policy.of_this_process()
    return policy if policy.policy != os.SCHED_IDLE and _has_cap_sys_nice() else None


def _enter_idle() -> None:
    """Run at ``SCHED_IDLE`` from here on."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


@contextlib.contextmanager
def idle_while(serving: Policy) -> Iterator[None]:
    """Run the block at ``SCHED_IDLE``, then at ``serving`` again (:class:`PriorityError` if it cannot)."""
    _enter_idle()
    try:
        yield
    finally:
        try:
            serving.apply()
        except OSError as err:
            raise PriorityError(f"cannot come back from idle priority: {err.strerror}") from None
