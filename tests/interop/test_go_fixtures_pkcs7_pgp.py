"""The Go toolchain's PKCS#7 and OpenPGP layers, through the installed executable."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fixtures import case_names, load_case, run_case


@pytest.mark.parametrize("name", case_names(("pkcs7-", "pgp-", "node-pkcs7", "node-pgp")))
def test_go_fixture(name: str, tmp_path: Path) -> None:
    run_case(load_case(name, tmp_path))
