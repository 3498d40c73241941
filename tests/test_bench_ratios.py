"""bench/ratios.py: the interval the pull benchmark's verdicts rest on."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from ratios import median_ratio


def test_a_load_spike_shared_by_a_round_does_not_widen_the_interval() -> None:
    """Rounds are resampled whole: a slow round slows both rows and the ratio stays what it is."""
    references = [1.0, 1.0, 5.0, 1.0, 5.0, 1.0, 9.0, 1.0]
    ratio = median_ratio([0.8 * value for value in references], references)
    assert (ratio.value, ratio.low, ratio.high) == pytest.approx((0.8, 0.8, 0.8))


def test_a_clear_difference_is_firm_and_a_noisy_one_is_not() -> None:
    draw = random.Random(7)
    references = [1.0 + draw.gauss(0, 0.02) for _ in range(25)]
    half = median_ratio([0.5 + draw.gauss(0, 0.02) for _ in range(25)], references)
    assert half.low < 0.5 < half.high
    assert half.side_of(0.7) == "below"
    assert half.side_of(0.3) == "above"
    noisy = median_ratio([0.8 + draw.gauss(0, 0.3) for _ in range(7)], references[:7])
    assert noisy.low < noisy.value < noisy.high
    assert noisy.side_of(noisy.value) == "unsure"
    assert half.verdict(0.7) == "met"
    assert half.verdict(0.3) == "NOT met"
    assert noisy.verdict(noisy.value) == "met, the interval holds the target"


def test_the_interval_is_reproducible() -> None:
    values, references = [1.0, 2.0, 3.0, 2.5], [2.0, 2.0, 1.0, 3.0]
    assert median_ratio(values, references) == median_ratio(values, references)


def test_rows_of_different_rounds_are_refused() -> None:
    with pytest.raises(ValueError, match="same rounds"):
        median_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same rounds"):
        median_ratio([], [])
