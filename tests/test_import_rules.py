"""The package tree is the architecture: these are the import rules it promises (docs/development.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ctd_decoder"
DEVELOPMENT_DOC = ROOT / "docs" / "development.md"
SCHEMES = ("jwe", "pgp", "pkcs7", "pkcs11", "provider")
LIBRARY, TOOLS = "ctd_decoder.ocicrypt", "ctd_decoder.tools"
SPEC = f"{LIBRARY}.spec"
# (importer, target): nothing under the importer may import anything under the target. The table
# in docs/development.md lists exactly these (test_the_development_doc_lists_the_enforced_rules).
FORBIDDEN = (
    (LIBRARY, "ctd_decoder.decoder"),
    (LIBRARY, TOOLS),
    (f"{LIBRARY}.blockcipher", f"{LIBRARY}.keywrap"),
    (SPEC, "ctd_decoder"),
    ("ctd_decoder.decoder", TOOLS),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _from_target(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement in ``path`` imports from."""
    if not node.level:
        return node.module or ""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved, lazy (in-function) imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _from_target(path, node)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("ctd_decoder."):
            found.add(node.value)  # importlib.import_module("ctd_decoder....") in a registry
    return {module for module in found if module.startswith("ctd_decoder")}


def _api_names() -> set[str]:
    """The library's API: the literal ``__all__`` of ctd_decoder/ocicrypt/__init__.py."""
    for node in ast.parse((PACKAGE / "ocicrypt" / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("ctd_decoder/ocicrypt/__init__.py has no literal __all__")


def _library_uses_beyond_the_api(path: Path, api: set[str], source: str | None = None) -> list[str]:
    """The imports in ``path`` (or ``source``, placed at ``path``) that reach the library other than
    through its API or its spec module."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _within(alias.name, LIBRARY) and alias.name != SPEC]
        elif isinstance(node, ast.ImportFrom):
            target = _from_target(path, node)
            names = {alias.name for alias in node.names}
            if target == LIBRARY:
                found += [f"{LIBRARY}.{name}" for name in sorted(names - api)]
            elif target == "ctd_decoder" and LIBRARY.rpartition(".")[2] in names:
                found.append(f"{LIBRARY} (as a module object)")
            elif _within(target, LIBRARY) and target != SPEC:
                found.append(target)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _within(node.value, LIBRARY):
            found.append(node.value)
    return [f"{_module_name(path)} imports {target}" for target in found]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


MODULES = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _scheme_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:3] == ["ctd_decoder", "ocicrypt", "keywrap"] and len(parts) > 3 and parts[3] in SCHEMES:
        return parts[3]
    return None


def _violations(source_prefix: str, forbidden_prefix: str) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if _within(module, source_prefix)
        for target in targets
        if _within(target, forbidden_prefix)
    ]


def test_the_walk_sees_every_layer_of_the_tree() -> None:
    assert "ctd_decoder.ocicrypt.layer" in MODULES
    assert "ctd_decoder.decoder.cold" in MODULES
    assert "ctd_decoder.tools.cli" in MODULES
    assert "ctd_decoder.ocicrypt.keywrap.pkcs7.wrapper" in MODULES["ctd_decoder.ocicrypt.keywrap"]
    assert "ctd_decoder.ocicrypt.descriptor.Descriptor" in MODULES["ctd_decoder.ocicrypt.layer"]
    assert SPEC in MODULES and {"decrypt_layer", "OcicryptError", "spec"} <= _api_names()


@pytest.mark.parametrize(("importer", "target"), FORBIDDEN, ids=[f"{a}-{b}" for a, b in FORBIDDEN])
def test_forbidden_imports(importer: str, target: str) -> None:
    assert any(_within(module, importer) for module in MODULES), f"no module under {importer}"
    assert _violations(importer, target) == []


def test_the_development_doc_lists_the_enforced_rules() -> None:
    text = DEVELOPMENT_DOC.read_text()
    table = text.split("<!-- import-rules -->", 1)[1].split("<!-- /import-rules -->", 1)[0]
    rows = re.findall(r"^\| `([\w.]+)` \| `([\w.]+)` \|$", table, re.M)
    assert sorted(rows) == sorted(FORBIDDEN)


def test_the_tools_use_the_library_only_through_its_api() -> None:
    api = _api_names()
    found = [
        violation
        for path in sorted((PACKAGE / "tools").rglob("*.py"))
        for violation in _library_uses_beyond_the_api(path, api)
    ]
    assert found == []


def test_the_api_rule_reports_each_way_around_the_api() -> None:
    # The rule's own check, on a module that is never written: only its path places the source.
    source = (
        "from ..ocicrypt import decrypt_layer, spec\n"
        "from ..ocicrypt.spec import TAR\n"
        "from ..ocicrypt import keysdir\n"
        "from ..ocicrypt.layer import decrypt_layer\n"
        "import ctd_decoder.ocicrypt.keys\n"
        "from ctd_decoder import ocicrypt\n"
        "NAME = 'ctd_decoder.ocicrypt.keywrap.jwe'\n"
    )
    found = _library_uses_beyond_the_api(PACKAGE / "tools" / "example.py", _api_names(), source)
    assert sorted(found) == sorted(
        f"ctd_decoder.tools.example imports {target}"
        for target in (
            "ctd_decoder.ocicrypt.keysdir",
            "ctd_decoder.ocicrypt.layer",
            "ctd_decoder.ocicrypt.keys",
            "ctd_decoder.ocicrypt (as a module object)",
            "ctd_decoder.ocicrypt.keywrap.jwe",
        )
    )


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


TESTS = ROOT / "tests"
TEST_MODULE_NAMES = re.compile(r"test_\w+\.py|conftest\.py|__init__\.py")
# The top-level packages under tests/ that bench/ and packaging/ may import (after putting tests/ on sys.path).
TEST_PACKAGES = {path.name for path in TESTS.iterdir() if (path / "__init__.py").exists()}


def misplaced_test_helpers() -> list[str]:
    """Python files in a test directory that are not tests, conftest or package markers."""
    return sorted(
        str(path.relative_to(ROOT))
        for path in TESTS.rglob("*.py")
        if not path.is_relative_to(TESTS / "support")
        and not path.is_relative_to(TESTS / "fixtures")
        and not TEST_MODULE_NAMES.fullmatch(path.name)
    )


def test_helpers_live_in_tests_support_only() -> None:
    assert misplaced_test_helpers() == []


def test_bench_and_packaging_import_only_support_from_the_tests() -> None:
    scripts = [*(ROOT / "bench").glob("*.py"), *(ROOT / "packaging").glob("*.py")]
    assert scripts
    wrong = {}
    for script in scripts:
        for node in ast.walk(ast.parse(script.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            tops = {name.split(".")[0] for name in names} & (TEST_PACKAGES - {"support"})
            if tops:
                wrong[script.name] = sorted(tops)
    assert wrong == {}


def test_a_helper_beside_the_tests_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "support").mkdir()
    (tmp_path / "e2e").mkdir()
    (tmp_path / "e2e" / "daemons.py").write_text("")
    (tmp_path / "e2e" / "test_pull.py").write_text("")
    monkeypatch.setitem(globals(), "TESTS", tmp_path)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert misplaced_test_helpers() == ["e2e/daemons.py"]
