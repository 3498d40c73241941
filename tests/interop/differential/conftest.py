"""Session fixtures of the differential tests: the seeds, the three decoders, the hypothesis seed."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from .harness import Decoders
from .seeds import Seed, make_seeds

SEED = int(os.environ.get("CTD_DIFFERENTIAL_SEED") or random.SystemRandom().randrange(2**32))
EXAMPLES = int(os.environ.get("CTD_DIFFERENTIAL_EXAMPLES", "300"))


def pytest_report_header() -> str:
    return (
        f"differential: hypothesis seed {SEED} (set CTD_DIFFERENTIAL_SEED to repeat a run), "
        f"{EXAMPLES} inputs per family (CTD_DIFFERENTIAL_EXAMPLES)"
    )


@pytest.fixture(scope="session")
def decoders() -> Decoders:
    return Decoders()


@pytest.fixture(scope="session")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Seed]]:
    yield make_seeds(tmp_path_factory.mktemp("differential"))
