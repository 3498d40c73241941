"""Session fixtures of the differential tests: the seeds, ours and the Go reference, the hypothesis seed."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from support.differential.divergences import TALLY
from support.differential.harness import Decoders
from support.differential.seeds import Seed, make_seeds
from support.references import go_versions_used, ocicrypt_version

# CI replays one explored seed so that a verdict depends on the change, not on the draw; elsewhere every
# run explores a fresh seed, and what it finds is kept in test_regressions.py.
CI_SEED = 20261201
SEED = int(
    os.environ.get("CTD_DIFFERENTIAL_SEED")
    or (CI_SEED if os.environ.get("CI") == "true" else random.SystemRandom().randrange(2**32))
)
EXAMPLES = int(os.environ.get("CTD_DIFFERENTIAL_EXAMPLES", "300"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the seed (also when nothing failed), the inputs run, their time and the divergences seen."""
    if not TALLY.inputs:
        return
    seen = ", ".join(f"{name}: {count}" for name, count in sorted(TALLY.divergences.items())) or "none"
    terminalreporter.write_line(
        f"differential: hypothesis seed {SEED} (CTD_DIFFERENTIAL_SEED repeats it), up to {EXAMPLES} inputs per "
        f"family (CTD_DIFFERENTIAL_EXAMPLES); {TALLY.inputs} inputs through ours and the Go reference (Go "
        f"{' and '.join(go_versions_used())}, ocicrypt {ocicrypt_version()}) in {TALLY.seconds:.0f} s; "
        f"documented divergences seen: {seen}"
    )


@pytest.fixture(scope="session")
def decoders() -> Decoders:
    return Decoders()


@pytest.fixture(scope="session")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Seed]]:
    yield make_seeds(tmp_path_factory.mktemp("differential"))
