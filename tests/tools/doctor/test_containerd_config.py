"""``ocicrypt doctor`` on real containerd configs and on a broken copy of each for every containerd check.

The real configs: Debian's /etc/containerd/config.toml (installed by the containerd package),
``containerd config default`` of Debian's 1.6.20 and of an opt-in containerd 2.x (``$CTD_REFERENCE_BIN``,
see tests/support/references.py), and the shipped snippets
(packaging/containerd, packaging/k3s, config.toml.example). Each is pointed at the installed decoder
and a test keys directory, then broken one setting at a time; every broken copy must give the named
check's status and a fix that names the setting to change. A case that runs containerd 2.x is marked
``containerd_2``; tests/conftest.py deselects it (and says so in the run's last lines) when none is given.
"""

from __future__ import annotations

import copy
import os
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import tomlwrite
from support.doctor import DEBIAN_CONTAINERD, DECODER, Doctor, run_doctor, run_doctor_command
from support.references import REFERENCE_BIN_ENV, containerd_2
from support.snippets import BASE_TEMPLATE_LINE, INSTALLED_DECODER, OCICRYPT_DIR, REPO, SNIPPETS, snippet_text

GZIP_ID = "io.containerd.ocicrypt.decoder.v1.tar.gzip"
TAR_ID = "io.containerd.ocicrypt.decoder.v1.tar"
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
CRI_V1 = "io.containerd.grpc.v1.cri"
CRI_IMAGES = "io.containerd.cri.v1.images"
DEBIAN_CONFIG = Path("/etc/containerd/config.toml")


@dataclass
class Base:
    """A real config: its TOML text, the containerd that reads it, and the file name it needs."""

    name: str
    text: str
    containerd: str
    file_name: str = "config.toml"

    @property
    def major(self) -> int:
        return 1 if self.containerd == DEBIAN_CONTAINERD else 2

    @property
    def template(self) -> bool:
        return self.file_name.endswith(".tmpl")


# The bases containerd 2.x reads (their checks run it): cases with them are marked containerd_2.
CONTAINERD_2_BASES = ("default-2.3", "snippet-v3", "k3s-v3")
NEEDS_CONTAINERD_2 = pytest.mark.containerd_2


def _containerd_2() -> str:
    """The opt-in containerd 2.x; without one, a name no PATH holds, so that running it fails loudly."""
    path = containerd_2()
    return str(path) if path is not None else f"containerd-2.x-not-given-set-{REFERENCE_BIN_ENV}"


def bases(*names: str, needing_containerd_2: tuple[str, ...] = CONTAINERD_2_BASES) -> list[Any]:
    """Parameters for the named bases, the ones in ``needing_containerd_2`` marked ``containerd_2``."""
    return [pytest.param(name, marks=NEEDS_CONTAINERD_2) if name in needing_containerd_2 else name for name in names]


def _config_default(exe: str) -> str:
    return subprocess.run([exe, "config", "default"], capture_output=True, text=True, check=True, timeout=60).stdout


def _debian() -> Base:
    if not DEBIAN_CONFIG.exists():
        message = f"{DEBIAN_CONFIG} is missing: apt-get install containerd (tests/run-all.sh does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return Base("debian", DEBIAN_CONFIG.read_text(), DEBIAN_CONTAINERD)


BASES: dict[str, Callable[[], Base]] = {
    "debian": _debian,
    "default-1.6": lambda: Base("default-1.6", _config_default(DEBIAN_CONTAINERD), DEBIAN_CONTAINERD),
    "default-2.3": lambda: Base("default-2.3", _config_default(_containerd_2()), _containerd_2()),
    "snippet-v2": lambda: Base("snippet-v2", snippet_text("containerd-v2"), DEBIAN_CONTAINERD),
    "snippet-v3": lambda: Base("snippet-v3", snippet_text("containerd-v3"), _containerd_2()),
    "k3s-v2": lambda: Base("k3s-v2", snippet_text("k3s-v2"), DEBIAN_CONTAINERD, SNIPPETS["k3s-v2"].name),
    "k3s-v3": lambda: Base("k3s-v3", snippet_text("k3s-v3"), _containerd_2(), SNIPPETS["k3s-v3"].name),
    "example": lambda: Base("example", (REPO / "config.toml.example").read_text(), DEBIAN_CONTAINERD),
}


def _builtin(processor_id: str, media_type: str) -> dict[str, Any]:
    return {
        "accepts": [media_type + "+encrypted"],
        "returns": media_type,
        "path": "ctd-decoder",
        "args": ["--decryption-keys-path", "/etc/containerd/ocicrypt/keys"],
        "env": ["OCICRYPT_KEYPROVIDER_CONFIG=/etc/containerd/ocicrypt/ocicrypt_keyprovider.conf"],
    }


def prepared(base: Base, tmp_path: Path) -> dict[str, Any]:
    """The base config pointed at the installed decoder and a keys dir under ``tmp_path``."""
    assert DECODER
    text = base.text.replace(INSTALLED_DECODER, DECODER).replace(OCICRYPT_DIR, str(tmp_path / "ocicrypt"))
    document = tomllib.loads(text)
    processors = document.setdefault("stream_processors", {})
    processors.setdefault(GZIP_ID, _builtin(GZIP_ID, GZIP.removesuffix("+encrypted")))
    processors[GZIP_ID]["path"] = DECODER
    return document


def write(base: Base, document: dict[str, Any], directory: Path) -> Path:
    """Write a (possibly broken) copy of the base; a k3s template keeps its base-template line."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / base.file_name
    prefix = BASE_TEMPLATE_LINE + "\n" if base.template else ""
    path.write_text(prefix + tomlwrite.dumps(document))
    return path


def doctor(base: Base, path: Path) -> Doctor:
    return run_doctor("--containerd-config", path, "--containerd", base.containerd)


def _version(document: dict[str, Any], base: Base) -> int:
    version = document.get("version")
    if isinstance(version, int):
        return version
    return 3 if base.file_name.startswith("config-v3") else 2 if base.template else 1


def cri_images_table(document: dict[str, Any], base: Base) -> dict[str, Any]:
    """The table holding image_decryption for this containerd and config version."""
    plugins = document.setdefault("plugins", {})
    if base.major >= 2 and _version(document, base) >= 3:
        return plugins.setdefault(CRI_IMAGES, {})
    return plugins.setdefault(CRI_V1, {})


# --- the real configs as shipped -------------------------------------------------------------------


@pytest.mark.parametrize("name", bases(*BASES))
def test_real_config_names_the_processor_containerd_itself_uses(name: str, tmp_path: Path) -> None:
    """For each encrypted media type, the doctor names the entry ``containerd config dump`` has for it."""
    base = BASES[name]()
    path = write(base, prepared(base, tmp_path), tmp_path / "etc")
    dump_input = tmp_path / "dump.toml"
    dump_input.write_text(path.read_text().replace(BASE_TEMPLATE_LINE, ""))
    dumped = subprocess.run(
        [base.containerd, "-c", str(dump_input), "config", "dump"], capture_output=True, text=True, timeout=60
    )
    assert dumped.returncode == 0, dumped.stderr
    processors = tomllib.loads(dumped.stdout)["stream_processors"]
    result = doctor(base, path)
    for media_type in ("tar+gzip+encrypted", "tar+encrypted", "tar+zstd+encrypted"):
        full = f"application/vnd.oci.image.layer.v1.{media_type}"
        users = [pid for pid, entry in processors.items() if full in entry.get("accepts", [])]
        findings = result.of(f"containerd.processor.{media_type}")
        assert len(findings) == 1, findings
        if len(users) == 1 and findings[0]["status"] == "ok":
            assert findings[0]["message"].startswith(users[0] + " "), (findings, users)
        elif not users:
            assert "no stream processor accepts" in findings[0]["message"]


@pytest.mark.parametrize("name", bases("debian", "default-1.6", "snippet-v2", "snippet-v3", "example"))
def test_real_config_pointed_at_the_decoder_has_no_error(name: str, tmp_path: Path) -> None:
    base = BASES[name]()
    result = doctor(base, write(base, prepared(base, tmp_path), tmp_path / "etc"))
    assert result.errors() == [], result.findings
    assert result.returncode == 0
    assert result.one("containerd.processor.tar+gzip+encrypted", "ok")["message"].startswith(GZIP_ID)
    assert result.one("cri.key_model", "ok")
    args = result.of("containerd.processor.args")
    assert args and all(f["status"] == "ok" and f["message"].endswith("/ocicrypt/keys") for f in args), args


@NEEDS_CONTAINERD_2
def test_containerd_2_default_config_pulls_through_the_transfer_service(tmp_path: Path) -> None:
    """No payload on that path: the doctor says the pulls take descriptor recovery, as information."""
    base = BASES["default-2.3"]()
    result = doctor(base, write(base, prepared(base, tmp_path), tmp_path / "etc"))
    finding = result.one("cri.use_local_image_pull", "ok")
    assert "transfer service" in finding["message"] and "descriptor recovery" in finding["message"]
    assert result.returncode == 0


@NEEDS_CONTAINERD_2
def test_transfer_service_with_recovery_turned_off_is_an_error(tmp_path: Path) -> None:
    base = BASES["default-2.3"]()
    document = prepared(base, tmp_path)
    turn_recovery_off(document, base, tmp_path)
    result = doctor(base, write(base, document, tmp_path / "etc"))
    finding = result.one("cri.use_local_image_pull", "error")
    assert "transfer service" in finding["message"] and "descriptor recovery is turned off" in finding["message"]
    assert "use_local_image_pull = true" in finding["fix"] and CRI_IMAGES in finding["fix"]
    assert "--descriptor-recovery=off" in finding["fix"]
    assert result.one("ctr.pull_path", "warning")
    assert result.returncode == 1


def test_debian_default_config_cannot_unpack_zstd_encrypted_layers(tmp_path: Path) -> None:
    base = BASES["debian"]()
    result = doctor(base, write(base, prepared(base, tmp_path), tmp_path / "etc"))
    finding = result.one("containerd.processor.tar+zstd+encrypted", "warning")
    assert TAR_ID in finding["fix"] and "returns" in finding["fix"]


@pytest.mark.parametrize("name", bases("k3s-v2", "k3s-v3"))
def test_k3s_template_says_the_base_template_is_not_checked(name: str, tmp_path: Path) -> None:
    base = BASES[name]()
    result = doctor(base, write(base, prepared(base, tmp_path), tmp_path / "etc"))
    warning = result.one("containerd.config", "warning")
    assert "k3s template" in warning["message"]
    assert "/var/lib/rancher/k3s/agent/etc/containerd/config.toml" in warning["fix"]
    if name == "k3s-v3":
        lip = result.one("cri.use_local_image_pull", "warning")
        assert "base template" in lip["message"] and "use_local_image_pull" in lip["fix"]
    assert result.errors() == [], result.findings


# --- one broken copy per mistake, of every real config ---------------------------------------------


def _gzip(document: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = document["stream_processors"][GZIP_ID]
    return entry


def break_key_model(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    """key_model = "" with descriptor recovery turned off: CRI pulls cannot decrypt."""
    cri_images_table(document, base).setdefault("image_decryption", {})["key_model"] = ""
    turn_recovery_off(document, base, tmp_path)


def turn_recovery_off(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    for entry in document["stream_processors"].values():
        entry["args"] = [*entry.get("args", []), "--descriptor-recovery=off"]


def break_processor_id(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    entry = _gzip(document)
    document["stream_processors"]["io.containerd.ocicrypt.decoder.v1.tar.gzip.mine"] = copy.deepcopy(entry)
    entry["accepts"] = []


def break_two_processors(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    document["stream_processors"]["example.com/also-gzip"] = copy.deepcopy(_gzip(document))


def break_returns(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    _gzip(document)["returns"] = "application/vnd.oci.image.layer.v1.tar"


def break_no_gzip_processor(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    _gzip(document)["accepts"] = []


def break_missing_path(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    _gzip(document)["path"] = str(tmp_path / "no-such-dir" / "ctd-decoder")


def break_not_executable(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    copied = tmp_path / "ctd-decoder-copy"
    assert DECODER
    copied.write_bytes(Path(DECODER).read_bytes())
    copied.chmod(0o644)
    _gzip(document)["path"] = str(copied)


def break_args(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    _gzip(document)["args"] = ["--keys-path", "/etc/containerd/ocicrypt/keys"]


def break_no_keys_path(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    _gzip(document)["args"] = []


def break_env(document: dict[str, Any], base: Base, tmp_path: Path) -> None:
    _gzip(document)["env"] = ["OCICRYPT_KEYPROVIDER_CONFIG"]


# name -> (mutation, check, status, words the fix must contain)
MISTAKES: dict[str, tuple[Callable[[dict[str, Any], Base, Path], None], str, str, tuple[str, ...]]] = {
    "key-model-empty": (break_key_model, "cri.key_model", "error", ("key_model", "image_decryption")),
    "gzip-under-an-id-without-payload": (
        break_processor_id,
        "containerd.processor.tar+gzip+encrypted",
        "error",
        (GZIP_ID, "accepts"),
    ),
    "two-processors-accept-gzip": (
        break_two_processors,
        "containerd.processor.tar+gzip+encrypted",
        "error",
        ("accepts",),
    ),
    "gzip-returns-plain-tar": (
        break_returns,
        "containerd.processor.tar+gzip+encrypted",
        "error",
        ("returns", "tar+gzip"),
    ),
    "no-gzip-processor": (break_no_gzip_processor, "containerd.processor.tar+gzip+encrypted", "error", ("accepts",)),
    "path-missing": (break_missing_path, "containerd.processor.path", "error", ("path",)),
    "path-not-executable": (break_not_executable, "containerd.processor.path", "error", ("chmod",)),
    "args-unknown-flag": (break_args, "containerd.processor.args", "error", ("args", "--decryption-keys-path")),
    "args-without-keys-path": (break_no_keys_path, "containerd.processor.args", "warning", ("--decryption-keys-path",)),
    "env-not-name-value": (break_env, "containerd.processor.env", "error", ("env", "NAME=VALUE")),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
@pytest.mark.parametrize("name", bases(*BASES))
def test_broken_copy_of_a_real_config(name: str, mistake: str, tmp_path: Path) -> None:
    base = BASES[name]()
    mutate, check, status, fix_words = MISTAKES[mistake]
    document = prepared(base, tmp_path)
    mutate(document, base, tmp_path)
    result = doctor(base, write(base, document, tmp_path / "etc"))
    matching = [f for f in result.of(check) if f["status"] == status]
    assert matching, result.findings
    finding = matching[0]
    for word in fix_words:
        assert word in finding["fix"], finding
    assert result.returncode == (1 if result.errors() else 0)


@pytest.mark.parametrize("recovery", ["on", "off"])
@pytest.mark.parametrize("name", bases("snippet-v3", "k3s-v3"))
def test_copy_without_use_local_image_pull(name: str, recovery: str, tmp_path: Path) -> None:
    base = BASES[name]()
    document = prepared(base, tmp_path)
    document.setdefault("plugins", {}).setdefault(CRI_IMAGES, {})["use_local_image_pull"] = False
    if recovery == "off":
        turn_recovery_off(document, base, tmp_path)
    result = doctor(base, write(base, document, tmp_path / "etc"))
    if recovery == "on":
        assert "descriptor recovery" in result.one("cri.use_local_image_pull", "ok")["message"]
        return
    finding = result.one("cri.use_local_image_pull", "error")
    assert "use_local_image_pull = true" in finding["fix"]
    assert result.returncode == 1


@pytest.mark.parametrize("name", bases(*BASES))
def test_key_model_other_than_node_takes_descriptor_recovery(name: str, tmp_path: Path) -> None:
    base = BASES[name]()
    document = prepared(base, tmp_path)
    cri_images_table(document, base).setdefault("image_decryption", {})["key_model"] = ""
    result = doctor(base, write(base, document, tmp_path / "etc"))
    finding = result.one("cri.key_model", "ok")
    assert "key_model = ''" in finding["message"] and "descriptor recovery" in finding["message"]


@NEEDS_CONTAINERD_2
def test_registry_mirrors_make_containerd_2_pull_locally_anyway(tmp_path: Path) -> None:
    """containerd 2.x falls back to a local pull when registry.mirrors is set (CheckLocalImagePullConfigs)."""
    base = BASES["default-2.3"]()
    document = prepared(base, tmp_path)
    images = document["plugins"][CRI_IMAGES]
    images["registry"] = {"mirrors": {"127.0.0.1:5000": {"endpoint": ["http://127.0.0.1:5000"]}}}
    images["registry"].pop("config_path", None)
    result = doctor(base, write(base, document, tmp_path / "etc"))
    finding = result.one("cri.use_local_image_pull", "warning")
    assert "registry.mirrors" in finding["message"] and "use_local_image_pull = true" in finding["fix"]


# Only the default config needs containerd 2.x here (to write it); the snippets are checked with 1.6.
@pytest.mark.parametrize("name", bases("snippet-v3", "default-2.3", "k3s-v3", needing_containerd_2=("default-2.3",)))
def test_config_version_3_with_containerd_1(name: str, tmp_path: Path) -> None:
    base = BASES[name]()
    path = write(base, prepared(base, tmp_path), tmp_path / "etc")
    result = run_doctor("--containerd-config", path, "--containerd", DEBIAN_CONTAINERD)
    finding = result.one("containerd.version", "error")
    assert "config version" in finding["message"] and "version 2" in finding["fix"]


@pytest.mark.parametrize("name", bases(*BASES))
def test_broken_toml_is_an_error_naming_the_file(name: str, tmp_path: Path) -> None:
    base = BASES[name]()
    path = write(base, prepared(base, tmp_path), tmp_path / "etc")
    path.write_text(path.read_text() + '\n[stream_processors."x"\n')
    result = doctor(base, path)
    finding = result.one("containerd.config", "error")
    assert str(path) in finding["message"] and "TOML" in finding["fix"]
    assert result.returncode == 1


def test_imported_file_adds_a_processor(tmp_path: Path) -> None:
    """``imports`` are read: an imported zstd entry under a payload-less ID is found."""
    base = BASES["snippet-v2"]()
    document = prepared(base, tmp_path)
    document["imports"] = [str(tmp_path / "conf.d" / "*.toml")]
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "zstd.toml").write_text(
        'version = 2\n[stream_processors."io.containerd.ocicrypt.decoder.v1.tar.zstd"]\n'
        '  accepts = ["application/vnd.oci.image.layer.v1.tar+zstd+encrypted"]\n'
        '  returns = "application/vnd.oci.image.layer.v1.tar+zstd"\n'
        f'  path = "{DECODER}"\n'
    )
    document["stream_processors"][TAR_ID]["accepts"] = ["application/vnd.oci.image.layer.v1.tar+encrypted"]
    result = doctor(base, write(base, document, tmp_path / "etc"))
    assert "zstd.toml" in result.one("containerd.config", "ok")["message"]
    finding = result.one("containerd.processor.tar+zstd+encrypted", "error")
    assert "no decryption payload" in finding["message"] and TAR_ID in finding["fix"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = run_doctor("--image", "docker://example.com/x:1")
    assert result.returncode == 2 and "oci:DIR" in result.stderr
    result = run_doctor("--no-such-flag")
    assert result.returncode == 2


def test_text_output_is_one_line_per_check_with_the_fix(tmp_path: Path) -> None:
    base = BASES["snippet-v2"]()
    document = prepared(base, tmp_path)
    break_returns(document, base, tmp_path)
    path = write(base, document, tmp_path / "etc")
    text = run_doctor_command("--containerd-config", path, "--containerd", DEBIAN_CONTAINERD)
    assert text.returncode == 1
    assert "Traceback" not in text.stderr
    json_result = doctor(base, path)
    lines = text.stdout.splitlines()
    assert len(lines) == len(json_result.findings)
    for line, finding in zip(lines, json_result.findings, strict=True):
        assert line.split()[0] == finding["status"]
        assert f"{finding['check']}: {finding['message']}" in line
        assert (f"-- fix: {finding['fix']}" in line) == bool(finding["fix"])


def test_usage_error_of_the_command_exits_2(tmp_path: Path) -> None:
    result = run_doctor_command("--image", "docker://example.com/x:1")
    assert result.returncode == 2 and "oci:DIR" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", bases(*BASES))
def test_key_model_fix_names_the_table_containerd_reads_it_from(name: str, tmp_path: Path) -> None:
    """containerd 2.x migrates a version 2 file's old CRI table, so the fix must name that table there."""
    base = BASES[name]()
    document = prepared(base, tmp_path)
    break_key_model(document, base, tmp_path)
    result = doctor(base, write(base, document, tmp_path / "etc"))
    table = CRI_IMAGES if base.major >= 2 and _version(document, base) >= 3 else CRI_V1
    assert table in result.one("cri.key_model", "error")["fix"]


def test_the_doctor_knows_every_encrypted_media_type() -> None:
    from ctd_decoder.ocicrypt.layer import ENCRYPTED_MEDIA_TYPES
    from ctd_decoder.tools.doctor.containerd import GZIP as DOCTOR_GZIP
    from ctd_decoder.tools.doctor.containerd import TAR, ZSTD

    assert {DOCTOR_GZIP, TAR, ZSTD} == ENCRYPTED_MEDIA_TYPES


@pytest.mark.parametrize(
    ("version", "sends_none"),
    [
        ((1, 6, 20), False),
        ((2, 0, 0), True),
        ((2, 0, 11), True),
        ((2, 0, 12), False),
        ((2, 1, 6), True),
        ((2, 1, 7), False),
        ((2, 2, 1), True),
        ((2, 2, 2), False),
        ((2, 3, 0), False),
    ],
)
def test_containerd_versions_whose_local_pull_sends_no_payload(version: tuple[int, int, int], sends_none: bool) -> None:
    from ctd_decoder.tools.doctor.pull_path import local_pull_sends_no_payload

    assert local_pull_sends_no_payload(version) is sends_none
