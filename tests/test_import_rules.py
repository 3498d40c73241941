"""The package tree is the architecture: these are the import rules it promises (README, Development)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ctd_decoder"
SCHEMES = ("jwe", "pgp", "pkcs7", "pkcs11", "provider")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved, lazy (in-function) imports included."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("ctd_decoder."):
            found.add(node.value)  # importlib.import_module("ctd_decoder....") in a registry
    return {module for module in found if module.startswith("ctd_decoder")}


MODULES = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _scheme_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:3] == ["ctd_decoder", "ocicrypt", "keywrap"] and len(parts) > 3 and parts[3] in SCHEMES:
        return parts[3]
    return None


def _violations(source_prefix: str, forbidden_prefixes: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if module == source_prefix or module.startswith(source_prefix + ".")
        for target in targets
        if any(target == forbidden or target.startswith(forbidden + ".") for forbidden in forbidden_prefixes)
    ]


def test_the_walk_sees_every_layer_of_the_tree() -> None:
    assert "ctd_decoder.ocicrypt.layer" in MODULES
    assert "ctd_decoder.decoder.cold" in MODULES
    assert "ctd_decoder.tools.cli" in MODULES
    assert "ctd_decoder.ocicrypt.keywrap.pkcs7.wrapper" in MODULES["ctd_decoder.ocicrypt.keywrap"]
    assert "ctd_decoder.ocicrypt.descriptor.Descriptor" in MODULES["ctd_decoder.ocicrypt.layer"]


def test_the_library_imports_neither_the_decoder_nor_the_tools() -> None:
    assert _violations("ctd_decoder.ocicrypt", ("ctd_decoder.decoder", "ctd_decoder.tools")) == []


def test_block_ciphers_do_not_import_key_wrapping() -> None:
    assert _violations("ctd_decoder.ocicrypt.blockcipher", ("ctd_decoder.ocicrypt.keywrap",)) == []


def test_the_decoder_does_not_import_the_tools() -> None:
    assert _violations("ctd_decoder.decoder", ("ctd_decoder.tools",)) == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_scheme_imports_no_other_scheme(scheme: str) -> None:
    crossings = [
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if _scheme_of(module) == scheme
        for target in targets
        if _scheme_of(target) not in (None, scheme)
    ]
    assert crossings == []
