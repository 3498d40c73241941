"""Differential tests: ours and the Go reference decoder (both builds) on generated inputs around valid layers.

Every input is a seed (a valid layer, ours or Go-written, with the payload that decrypts it) and up
to three mutations of one family. The verdicts must agree (same output bytes, or both fail with
the same text up to the first colon) unless the disagreement is one of the documented divergences
in :mod:`.divergences`. Bounded by ``CTD_DIFFERENTIAL_EXAMPLES`` inputs per family (300: about
0.15 s of CPU per input for ours and the two reference builds); the seed, the inputs run and their time are printed
at the end of the pytest run. A failing input is shrunk by hypothesis; keep it in ``test_regressions.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from support.differential.divergences import check_agreement
from support.differential.harness import Decoders
from support.differential.seeds import Seed
from support.differential.strategies import FAMILIES, cases

from .conftest import EXAMPLES, SEED


@pytest.mark.parametrize("family", FAMILIES)
def test_decoders_agree_on_generated_inputs(family: str, seeds: dict[str, Seed], decoders: Decoders) -> None:
    @hypothesis_seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(cases(seeds, family))
    def agree(case: tuple[str, tuple[tuple[object, ...], ...]]) -> None:
        check_agreement(seeds, decoders, case, f"seed {SEED}, family {family}")

    agree()
