"""The library's API (ctd_decoder/ocicrypt/__init__.py): declared once, loaded lazily, resolving to the real objects."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ctd_decoder.ocicrypt as api
from ctd_decoder.decoder.payload import MissingPayloadError, PayloadError
from ctd_decoder.ocicrypt import errors

INIT = Path(api.__file__)


def _type_checking_imports() -> dict[str, tuple[str, str]]:
    """What the ``if TYPE_CHECKING:`` block imports: API name -> (relative module, attribute)."""
    tree = ast.parse(INIT.read_text())
    (block,) = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    found: dict[str, tuple[str, str]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            found[alias.asname or alias.name] = ("." + (node.module or ""), alias.name)
    return found


def test_all_the_exports_and_the_type_checking_imports_name_the_same_things() -> None:
    exports = dict(api._EXPORTS)
    assert sorted(api.__all__) == sorted(["spec", *exports])
    assert len(set(api.__all__)) == len(api.__all__)
    assert _type_checking_imports() == {**exports, "spec": (".", "spec")}


@pytest.mark.parametrize("name", sorted(api._EXPORTS))
def test_each_name_is_the_object_its_module_defines(name: str) -> None:
    module_name, attribute = api._EXPORTS[name]
    expected = getattr(importlib.import_module(module_name, api.__name__), attribute)
    assert getattr(api, name) is expected


def test_importing_the_package_imports_no_module_of_it_and_a_name_only_its_own() -> None:
    code = (
        "import json, sys\n"
        "import ctd_decoder.ocicrypt as api\n"
        "before = sorted(m for m in sys.modules if m.startswith('ctd_decoder'))\n"
        "from ctd_decoder.ocicrypt import DecryptConfig\n"
        "after = sorted(m for m in sys.modules if m.startswith('ctd_decoder'))\n"
        "print(json.dumps([before, after, 'typing' in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, typing_loaded = json.loads(result.stdout)
    assert before == ["ctd_decoder", "ctd_decoder.ocicrypt"]
    assert after == [*before, "ctd_decoder.ocicrypt.config", "ctd_decoder.ocicrypt.spec"]
    assert not typing_loaded


@pytest.mark.parametrize(
    "first_import",
    [
        "import ctd_decoder.ocicrypt.keywrap",  # its `from .. import spec` once recursed in __getattr__
        "from ctd_decoder.ocicrypt import spec",
        "import ctd_decoder.ocicrypt as api; api.spec",
        "from ctd_decoder.ocicrypt import config",  # a submodule outside the API still imports
    ],
)
def test_the_spec_module_and_other_submodules_import_first_in_a_fresh_interpreter(first_import: str) -> None:
    code = f"{first_import}\nimport ctd_decoder.ocicrypt as api\nprint(api.spec.PRIVKEYS)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "privkeys\n", "")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'keysdir_loader'"):
        api.keysdir_loader  # noqa: B018


def test_decoder_error_is_the_deprecated_alias_of_ocicrypt_error() -> None:
    assert errors.DecoderError is errors.OcicryptError is api.DecoderError is api.OcicryptError
    assert "Deprecated alias" in INIT.with_name("errors.py").read_text()


def test_the_payload_error_is_the_decoders_and_still_an_ocicrypt_error() -> None:
    assert PayloadError.__module__ == "ctd_decoder.decoder.payload"
    assert issubclass(MissingPayloadError, PayloadError) and issubclass(PayloadError, errors.OcicryptError)
    assert not hasattr(errors, "PayloadError")
