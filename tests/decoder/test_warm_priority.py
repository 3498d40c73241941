"""decoder/warm/priority.py against the real scheduler (the tests run as root, with CAP_SYS_NICE)."""

from __future__ import annotations

import os

import pytest

from ctd_decoder.decoder.warm.priority import Policy, PriorityError, idle_while, serving_policy


def test_the_block_runs_at_idle_priority_and_the_policy_comes_back() -> None:
    serving = serving_policy()
    assert serving is not None, "the tests run without CAP_SYS_NICE"
    with idle_while(serving):
        assert os.sched_getscheduler(0) == os.SCHED_IDLE
    assert os.sched_getscheduler(0) == serving.policy == os.SCHED_OTHER


def test_a_policy_that_cannot_be_restored_is_an_error_not_a_server_left_at_idle() -> None:
    own = Policy.of_this_process()
    try:
        with (
            pytest.raises(PriorityError, match="cannot come back from idle priority"),
            idle_while(Policy(-5, own.param)),
        ):
            pass
        assert os.sched_getscheduler(0) == os.SCHED_IDLE  # what the server would have gone on at
    finally:
        own.apply()
