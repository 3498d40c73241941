"""A ratio of two medians with a 95% bootstrap interval, for timings taken on a shared, noisy machine.

The benchmarks alternate their rows round after round, so sample ``i`` of every row comes from the same
round; the interval resamples whole rounds (a paired bootstrap), which keeps what a round shares (the
machine's load at that moment) in both medians. With 7 rounds the interval of a pull's ratio is often
0.1x wide: a verdict against a target is only firm when the whole interval lies on one side of it.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

RESAMPLES = 2000


@dataclass(frozen=True)
class Ratio:
    """median(values) / median(references), and the 2.5th and 97.5th percentiles of its bootstrap."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.2f}x (95% interval {self.low:.2f}-{self.high:.2f})"

    def side_of(self, target: float) -> str:
        """ "above" or "below" when the whole interval lies on that side of ``target`` (at it counts as
        above), else "unsure"."""
        if self.low >= target:
            return "above"
        if self.high < target:
            return "below"
        return "unsure"

    def verdict(self, target: float) -> str:
        """ "met" or "NOT met" (ours / reference at most ``target``) from the value, and whether the interval
        backs it."""
        met = self.value <= target
        firm = self.side_of(target) == ("below" if met else "above")
        return ("met" if met else "NOT met") + ("" if firm else ", the interval holds the target")


def median_ratio(values: list[float], references: list[float], seed: int = 0) -> Ratio:
    """The ratio of the medians of two rows of the same rounds, with its paired bootstrap interval."""
    if len(values) != len(references) or not values:
        raise ValueError(f"need two rows of the same rounds, got {len(values)} and {len(references)} samples")
    rounds = range(len(values))
    draw = random.Random(seed)
    resampled = sorted(
        statistics.median(values[i] for i in picked) / statistics.median(references[i] for i in picked)
        for picked in (draw.choices(rounds, k=len(values)) for _ in range(RESAMPLES))
    )
    return Ratio(
        statistics.median(values) / statistics.median(references),
        resampled[int(0.025 * RESAMPLES)],
        resampled[int(0.975 * RESAMPLES) - 1],
    )
