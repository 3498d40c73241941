"""One set of paths per install route: what the node README, the installed snippets and the doctor's fix
lines name exists after that install (the tarball's install.sh and the Debian package staged from a
stand-in bundle here, the real bundle in tests/packaging/test_packaging.py; pip: this test environment's own
install), and a config file that cannot be read gets a fix for that, not for its TOML syntax."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from support.doctor import DEBIAN_CONTAINERD, DECODER, OCICRYPT, Doctor, run_doctor
from support.install_routes import (
    EXAMPLES,
    PREFIXES,
    ROUTES,
    exists_in_stage,
    fake_bundle,
    in_stage,
    named_paths,
    node_readme_examples,
    node_readme_paths,
    stage_route,
)
from support.snippets import BASE_TEMPLATE_LINE, REPO, check_processors

from ctd_decoder.tools.doctor import install_paths
from ctd_decoder.tools.doctor.containerd import _check_config
from ctd_decoder.tools.doctor.process import K3S_CONFIG
from ctd_decoder.tools.doctor.report import Report

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
GZIP_ID = "io.containerd.ocicrypt.decoder.v1.tar.gzip"
# What the snippets and fixes name that an install need not create: the operator writes or chooses them
# (a pip install makes no keys directory; the packages do, and their tests check it).
OPERATOR_FILES = (
    "/etc/containerd/config.toml",
    "/etc/containerd/ocicrypt/ocicrypt_keyprovider.conf",
    "/etc/containerd/ocicrypt/keys",
    K3S_CONFIG,
)


@pytest.fixture(scope="module", params=ROUTES)
def staged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    work = tmp_path_factory.mktemp(f"route-{request.param}")
    return request.param, stage_route(request.param, fake_bundle(work), work)


def test_every_path_of_the_node_readme_exists_after_its_route(staged: tuple[str, Path]) -> None:
    route, stage = staged
    named = node_readme_paths()[route] + node_readme_examples(route)
    missing = [path for path in named if not exists_in_stage(stage, path)]
    assert not missing, f"{route}: the node README names {missing}, which the install did not create"


def _snippet_toml(path: Path) -> dict[str, object]:
    text = path.read_text()
    if path.name.endswith(".tmpl"):
        first, _, text = text.partition("\n")
        assert first == BASE_TEMPLATE_LINE
    return tomllib.loads(text)


def test_installed_snippets_name_the_routes_own_decoder_and_paths_that_exist(staged: tuple[str, Path]) -> None:
    route, stage = staged
    examples = in_stage(stage, f"{PREFIXES[route]}/{EXAMPLES}")
    snippets = sorted(
        [*examples.glob("containerd/*.toml"), *examples.glob("k3s/*.tmpl"), examples / "config.toml.example"]
    )
    assert len(snippets) == 5, snippets
    decoder = f"{PREFIXES[route]}/bin/ctd-decoder"
    for snippet in snippets:
        config = _snippet_toml(snippet)
        check_processors(config)  # type: ignore[arg-type]
        processors = config["stream_processors"]
        assert isinstance(processors, dict)
        assert {entry["path"] for entry in processors.values()} == {decoder}, snippet
        named = [path for path in named_paths(snippet.read_text()) if path not in OPERATOR_FILES]
        missing = [
            path for path in named if not path.startswith("/var/lib/rancher/") and not exists_in_stage(stage, path)
        ]
        assert not missing, f"{snippet} names {missing}"


def test_the_bundles_fix_paths_exist_in_its_staged_install(staged: tuple[str, Path]) -> None:
    """Where the frozen doctor looks, from the bundle's place (the e2e packaging test runs the real one)."""
    route, stage = staged
    paths = install_paths._bundle(str(in_stage(stage, f"{PREFIXES[route]}/lib/ctd-decoder")))
    assert paths.route == "bundle"
    assert paths.decoder == str(in_stage(stage, f"{PREFIXES[route]}/bin/ctd-decoder"))
    assert os.path.lexists(paths.decoder)
    for version in (2, 3):
        snippet = paths.containerd_snippet(version)
        assert Path(snippet).is_file(), snippet
        assert f"{PREFIXES[route]}/bin/ctd-decoder" in Path(snippet).read_text()


def test_a_bundle_run_from_an_unpacked_release_names_the_release_files(tmp_path: Path) -> None:
    release = tmp_path / "ctd-decoder-1.0-linux-x86_64"
    (release / "containerd").mkdir(parents=True)
    (release / "containerd/config-v2.toml").write_text("")
    bundle = release / "ctd-decoder"
    bundle.mkdir()
    paths = install_paths._bundle(str(bundle))
    assert paths.route == "release"
    assert paths.containerd_snippet(2) == f"{release}/containerd/config-v2.toml, with path = {bundle}/ctd-decoder"


# --- the pip route: this test environment is a pip install of the checkout -------------------------------


def _fix_paths(result: Doctor) -> list[str]:
    return [path for finding in result.findings for path in named_paths(finding["fix"])]


def test_pip_install_names_the_venv_decoder_and_the_checkouts_snippets() -> None:
    paths = install_paths.detect()
    assert paths.route == "pip"
    assert DECODER and OCICRYPT
    assert paths.decoder == DECODER, "the decoder beside this environment's ocicrypt"
    assert paths.examples == str(REPO / "packaging"), "pip installed this checkout (direct_url.json)"
    assert paths.containerd_snippet(3) == f"{REPO}/packaging/containerd/config-v3.toml, with path = {DECODER}"


def _v2_config(tmp_path: Path, decoder: str) -> Path:
    """A gzip-only processor running ``decoder``; the built-in .tar entry stays (no zstd)."""
    path = tmp_path / "config.toml"
    path.write_text(
        "version = 2\n"
        f'[stream_processors."{GZIP_ID}"]\n'
        f'  accepts = ["{GZIP}"]\n'
        f'  returns = "{GZIP.removesuffix("+encrypted")}"\n'
        f'  path = "{decoder}"\n'
        '  args = ["--decryption-keys-path", "/etc/containerd/ocicrypt/keys"]\n'
    )
    return path


def test_pip_install_fix_lines_name_paths_that_exist(tmp_path: Path) -> None:
    relative = _v2_config(tmp_path, "ctd-decoder-not-installed-anywhere")
    result = run_doctor("--containerd-config", relative, "--containerd", DEBIAN_CONTAINERD)
    zstd = result.one("containerd.processor.tar+zstd+encrypted", "warning")
    assert f"(as in {REPO}/packaging/containerd/config-v2.toml, with path = {DECODER})" in zstd["fix"]
    path_fix = next(f["fix"] for f in result.of("containerd.processor.path") if f["status"] != "ok")
    assert path_fix.endswith(f"e.g. {DECODER}"), path_fix
    v3 = tmp_path / "v3" / "config.toml"
    v3.parent.mkdir()
    v3.write_text(_v2_config(tmp_path, str(DECODER)).read_text().replace("version = 2", "version = 3"))
    version = run_doctor("--containerd-config", v3, "--containerd", DEBIAN_CONTAINERD)
    assert f"{REPO}/packaging/containerd/config-v2.toml" in version.one("containerd.version", "error")["fix"]
    named = _fix_paths(result) + _fix_paths(version)
    assert len(named) >= 5, named
    missing = [path for path in named if path not in OPERATOR_FILES and not os.path.lexists(path)]
    assert not missing, f"fix lines name {missing}"


def test_no_config_file_names_both_snippets_of_this_install() -> None:
    report = Report()
    _check_config(report, None)
    (finding,) = report.findings
    paths = install_paths.detect()
    assert finding.status == "warning"
    assert paths.containerd_snippet(2) in finding.fix and paths.containerd_snippet(3) in finding.fix
    assert all(os.path.lexists(path) for path in named_paths(finding.fix) if path not in OPERATOR_FILES), finding


# --- a config file that cannot be read -----------------------------------------------------------------------


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "no-such" / "config.toml"


def _directory(tmp_path: Path) -> Path:
    return tmp_path


def _latin1(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_bytes("version = 2\n# caf\xe9\n".encode("latin-1"))
    return path


def _inline_template(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml.tmpl"
    path.write_text('{{ template "base" . }}\n[plugins."x"]\n  y = {{ .NodeConfig.Z }}\n')
    return path


def _bad_toml(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('version = 2\n[stream_processors."x"\n')
    return path


# name -> (the file, words of the message, words of the fix)
UNREADABLE = {
    "missing": (_missing, ("cannot read", "No such file or directory"), ("--containerd-config FILE", "create")),
    "directory": (_directory, ("cannot read", "Is a directory"), ("not the directory",)),
    "not-utf8": (_latin1, ("is not UTF-8 text",), ("save", "as UTF-8 text")),
    "template-actions": (_inline_template, ("template actions",), (f"--containerd-config {K3S_CONFIG}",)),
    "toml-syntax": (_bad_toml, ("is not valid TOML",), ("fix the file's TOML syntax",)),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_a_config_that_cannot_be_read_gets_the_fix_for_its_reason(case: str, tmp_path: Path) -> None:
    make, message_words, fix_words = UNREADABLE[case]
    path = make(tmp_path)
    result = run_doctor("--containerd-config", path, "--containerd", DEBIAN_CONTAINERD)
    assert result.returncode == 1
    finding = result.one("containerd.config", "error")
    assert str(path) in finding["message"]
    for word in message_words:
        assert word in finding["message"], finding
    for word in fix_words:
        assert word in finding["fix"], finding
    assert ("TOML" in finding["fix"]) == (case == "toml-syntax"), finding
