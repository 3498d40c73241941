"""The installed ``ctd-decoder`` command line, as an operator types it, next to the Go reference decoder's.

The reference (tests/support/goreference) parses its command line with Go's flag package the way imgcrypt's
urfave/cli application does; the imgcrypt 1.1.7 and 2.0.2 decoders agreed with it on these inputs (exit
status, stderr, and 2.0.2's first stdout line) when they were run here.
"""

from __future__ import annotations

import pytest
from support.decoder import Result, run_decoder
from support.layers import GZIP_ENCRYPTED
from support.references import TOOLCHAINS, go_reference

import ctd_decoder
from ctd_decoder.decoder.cold import USAGE
from ctd_decoder.decoder.payload import MEDIA_TYPE_ENV, MISSING_PAYLOAD


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version_prints_like_the_go_decoder(flag: str) -> None:
    result = run_decoder(b"", None, [flag])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"ctd-decoder version {ctd_decoder.__version__}\n"
    assert result.stderr == ""


def test_help_lists_the_version_flag() -> None:
    result = run_decoder(b"", None, ["--help"])
    assert result.returncode == 0
    assert b"--decryption-keys-path" in result.stdout
    assert b"--version, -v" in result.stdout


def _go(toolchain: str, args: list[str]) -> Result:
    return run_decoder(b"", None, args, command=[str(go_reference(toolchain).path)])


@pytest.mark.parametrize("args", [["help"], ["h"], ["--decryption-keys-path", "/nowhere", "help"], ["--", "help"]])
def test_help_command_prints_the_usage_like_the_go_decoder(args: list[str]) -> None:
    result = run_decoder(b"", None, args)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.decode() == USAGE
    for toolchain in TOOLCHAINS:
        go = _go(toolchain, args)
        assert (go.returncode, go.stderr) == (0, ""), toolchain
        assert b"--decryption-keys-path value" in go.stdout


def test_help_for_an_unknown_topic_fails_like_the_go_decoder() -> None:
    result = run_decoder(b"", None, ["help", "decrypt"])
    assert (result.returncode, result.stdout, result.stderr) == (3, b"", "No help topic for 'decrypt'\n")
    for toolchain in TOOLCHAINS:
        go = _go(toolchain, ["help", "decrypt"])
        assert (go.returncode, go.stdout, go.stderr) == (3, b"", result.stderr), toolchain


@pytest.mark.parametrize(
    "args",
    [["--bogus"], ["-x"], ["--bogus=1"], ["---x"], ["--decryption-keys-path"], ["-h=maybe"]],
)
def test_bad_flag_prints_usage_on_stdout_and_the_error_on_stderr_like_the_go_decoder(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MEDIA_TYPE_ENV, raising=False)
    result = run_decoder(b"", None, args)
    assert result.returncode == 1
    assert result.stdout.decode() == f"Incorrect Usage: {result.stderr}\n{USAGE}"
    for toolchain in TOOLCHAINS:
        go = _go(toolchain, args)
        assert (go.returncode, go.stderr) == (1, result.stderr), toolchain
        assert result.stdout.splitlines()[0] == go.stdout.splitlines()[0]


def test_flags_end_at_the_first_argument_like_the_go_decoder() -> None:
    result = run_decoder(b"", None, ["extra", "--bogus"], env={MEDIA_TYPE_ENV: GZIP_ENCRYPTED})
    for toolchain in TOOLCHAINS:
        go = _go(toolchain, ["extra", "--bogus"])
        assert (go.returncode, go.stdout, go.stderr) == (1, b"", f"{MISSING_PAYLOAD}\n"), toolchain
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.startswith(f"{MISSING_PAYLOAD} (")


def test_bad_flag_under_containerd_keeps_the_layer_stream_empty() -> None:
    # containerd would unpack a usage text on stdout as tar data and report that instead of the error.
    result = run_decoder(b"", None, ["--bogus"], env={MEDIA_TYPE_ENV: GZIP_ENCRYPTED})
    assert (result.returncode, result.stdout) == (1, b"")
    assert (
        result.stderr
        == f"flag provided but not defined: -bogus\n\nIncorrect Usage: flag provided but not defined: -bogus\n\n{USAGE}"
    )
