"""The Go toolchain's PKCS#7 and OpenPGP layers, through the installed executable."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fixtures import case_names, load_case, run_case

# Every case runs cold and through a running warm server (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("decoder_path")


@pytest.mark.parametrize("name", case_names(("pkcs7-", "pgp-", "node-pkcs7", "node-pgp")))
def test_go_fixture(name: str, tmp_path: Path) -> None:
    run_case(load_case(name, tmp_path))
