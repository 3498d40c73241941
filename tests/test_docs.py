"""The documentation set checked against the code: the figures the README states against the constants they
describe (measured in tests/ocicrypt/test_stream.py and tests/decoder/), the messages it quotes against
their sources, and every file path and link it names against the repository."""

from __future__ import annotations

import re
import subprocess

from support.docs import DOC_SET, README, REPO, doc_text, flat, relative_links

from ctd_decoder.decoder.payload import MAX_PAYLOAD_SIZE
from ctd_decoder.ocicrypt.keywrap.provider.wrapper import DEFAULT_TIMEOUT
from ctd_decoder.ocicrypt.stream import _PIPELINE_DEPTH, CHUNK_SIZE, PIPE_SIZE

MIB = 1 << 20
# A repository path in prose or a comment: tests/... or bench/..., not inside another path or a word.
_REPO_PATH = re.compile(r"(?<![\w./-])((?:tests|bench)/[\w./-]*[\w])")


def test_readme_stream_figures_match_the_code() -> None:
    text = doc_text(README)
    chunk = CHUNK_SIZE // MIB
    assert f"the last full {chunk} MiB chunk and of the short one after it ({chunk} to {2 * chunk} MiB" in text
    assert f"{chunk} MiB chunks in five buffers allocated once (three for ciphertext, two for plaintext;" in text
    assert _PIPELINE_DEPTH == 3
    assert f"{PIPE_SIZE // MIB} MiB pipes" in text
    assert "1 MiB chunk" not in text and "1 MiB hold-back" not in text


def test_readme_limits_match_the_code() -> None:
    text = doc_text(README)
    assert f"the payload exceeds {MAX_PAYLOAD_SIZE // MIB} MiB" in text
    assert f"(default {DEFAULT_TIMEOUT:g})" in text


def test_readme_quotes_the_small_clients_message_for_a_directory_as_stdin() -> None:
    """The README's text is the C client's literal (tests/decoder/test_warm.py runs both cases)."""
    source = (REPO / "packaging/warm-client/ctd-decoder-client.c").read_text()
    define = source[source.index("#define STDIN_IS_A_DIRECTORY") :].split("\n\n", 1)[0]
    message = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', define)).removesuffix("\\n")
    assert message.startswith("ctd-decoder: stdin is a directory")
    text = doc_text(README)
    assert f"`{message}`" in text
    assert "`Fatal Python error: init_sys_streams: <stdin> is a directory, cannot continue`" in text


def test_every_test_and_bench_path_the_docs_and_packaging_name_exists() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--", "pyproject.toml", "packaging", "docs", "README.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    named = {
        (name, path)
        for name in listed
        if not name.endswith((".tar.gz", ".deb"))
        for path in _REPO_PATH.findall((REPO / name).read_text(errors="replace"))
    }
    assert any(path == "tests/run-all.sh" for _, path in named), "the pattern finds nothing"
    missing = sorted((name, path) for name, path in named if not (REPO / path).exists())
    assert not missing, missing


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_every_relative_link_of_the_doc_set_resolves() -> None:
    checked = 0
    for name in DOC_SET:
        for target in relative_links(name):
            path, _, anchor = target.partition("#")
            resolved = ((REPO / name).parent / path).resolve()
            assert resolved.exists(), f"{name}: {target}"
            if anchor and resolved.suffix == ".md":
                headings = [line for line in resolved.read_text().splitlines() if line.startswith("#")]
                assert anchor in {_slug(line) for line in headings}, f"{name}: {target}"
            checked += 1
    assert checked > 10


def test_the_docs_link_from_the_readme() -> None:
    targets = set(relative_links(README))
    for name in DOC_SET[1:]:
        assert name in targets, name
    assert flat("First run `ocicrypt doctor` on the node") in doc_text(README)[:2000]
