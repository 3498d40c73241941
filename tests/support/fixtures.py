"""The Go-produced fixtures in ``tests/fixtures/go-ocicrypt`` (see its README)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

_CANDIDATES = [
    os.environ.get("CTD_FIXTURES_DIR", ""),
    str(Path(__file__).resolve().parents[1] / "fixtures" / "go-ocicrypt"),
]


def fixtures_dir() -> Path:
    """Return the fixture directory; fail (never skip) if it cannot be found."""
    for candidate in _CANDIDATES:
        if candidate and (Path(candidate) / "README.md").is_file():
            return Path(candidate)
    pytest.fail("the go-ocicrypt fixtures are missing from tests/fixtures/go-ocicrypt (or CTD_FIXTURES_DIR)")


def case_names(prefixes: tuple[str, ...]) -> list[str]:
    """List the fixture cases whose name starts with one of ``prefixes``."""
    for candidate in _CANDIDATES:
        if candidate and (Path(candidate) / "README.md").is_file():
            return sorted(p.name for p in Path(candidate).iterdir() if p.is_dir() and p.name.startswith(prefixes))
    return [f"missing-fixtures-{prefix}" for prefix in prefixes]


@dataclass
class Case:
    """One fixture case, copied into a temp dir with ``@CASEDIR@`` substituted."""

    name: str
    directory: Path
    args: list[str]
    env: dict[str, str]

    @property
    def layer(self) -> Path:
        return self.directory / "layer.enc"

    @property
    def payload(self) -> bytes | None:
        path = self.directory / "payload.bin"
        return path.read_bytes() if path.exists() else None

    @property
    def expected_sha256(self) -> str | None:
        path = self.directory / "expected.sha256"
        return path.read_text().strip() if path.exists() else None

    @property
    def expected_stderr(self) -> str:
        return (self.directory / "expected.stderr").read_text(errors="replace")

    @property
    def expected_prefix(self) -> str:
        """The Go error text up to its first colon, which a compatible decoder must repeat."""
        return self.expected_stderr.split(":", 1)[0]


def load_case(name: str, tmp_path: Path) -> Case:
    """Copy case ``name`` to ``tmp_path`` and substitute its ``@CASEDIR@`` placeholders."""
    source = fixtures_dir() / name
    if not source.is_dir():
        pytest.fail(f"fixture case {name} is missing")
    target = tmp_path / name
    shutil.copytree(source, target, symlinks=True)
    for conf in target.rglob("*.conf"):
        conf.write_text(conf.read_text().replace("@CASEDIR@", str(target)))
    cmd = json.loads((target / "cmd").read_text())
    env = {key: value.replace("@CASEDIR@", str(target)) for key, value in cmd.get("env", {}).items()}
    return Case(name, target, list(cmd.get("args", [])), env)


def run_case(case: Case) -> None:
    """Run the installed decoder on ``case`` as containerd would and assert the Go decoder's result."""
    import hashlib

    from .decoder import run_decoder

    result = run_decoder(case.layer, case.payload, case.args, case.env, cwd=case.directory)
    expected = case.expected_sha256
    if expected is not None:
        assert result.returncode == 0, result.stderr
        assert hashlib.sha256(result.stdout).hexdigest() == expected
        return
    assert result.returncode == int((case.directory / "expected.rc").read_text())
    assert result.stdout == b"", "a failing decode must not release plaintext of such a small layer"
    assert result.stderr.startswith(case.expected_prefix + ":"), result.stderr
    assert "Traceback" not in result.stderr
