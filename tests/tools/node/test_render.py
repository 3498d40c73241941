"""What ``ocicrypt node install`` writes for each host it can find, loaded the way containerd loads it:
the version-2 forms (containerd 1.x, k3s with containerd 1.7) with Debian's containerd 1.6.20
(``containerd --config X config dump``), the version-3 forms (containerd 2.x, k3s with 2.x) parsed
with tomllib only (no containerd 2.x here). Also the marked ``imports`` edit and its exact undo.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from support.snippets import check_processors

from ctd_decoder.tools.node import detect, dropin, imports_edit, paths
from ctd_decoder.tools.node.ledger import InstallLedger
from ctd_decoder.tools.node.paths import Flavour, HostLayout

K3S = paths.FLAVOURS[Flavour.K3S]
RKE2 = paths.FLAVOURS[Flavour.RKE2]
CRI_V2 = '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n'
CRI_V3 = "[plugins.'io.containerd.cri.v1.images']\n  use_local_image_pull = true\n"


def containerd_dump(config: Path) -> dict[str, Any]:
    """The merged config as Debian's containerd 1.6.20 loads it (imports included)."""
    done = subprocess.run(["containerd", "--config", str(config), "config", "dump"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tomllib.loads(done.stdout)


def host_with(tmp_path: Path, files: dict[str, str]) -> HostLayout:
    for host_path, text in files.items():
        local = tmp_path / host_path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)
    return HostLayout(str(tmp_path))


def rendered(found: detect.Plan) -> str:
    """What install writes for ``found`` on a real node (no prefix)."""
    args = (paths.DECODER, paths.KEYS_DIR, paths.KEYPROVIDER_CONFIG)
    if found.strategy == "template":
        return dropin.template_text(found.config_version, *args)
    return dropin.dropin_toml(found.config_version, *args)


@pytest.mark.parametrize(("flavour", "where"), [(Flavour.K3S, K3S), (Flavour.RKE2, RKE2)])
@pytest.mark.parametrize("version", [2, 3])
def test_k3s_with_drop_in_directory_gets_a_drop_in(
    tmp_path: Path, flavour: Flavour, where: paths.FlavourPaths, version: int
) -> None:
    glob = f"{where.dropin_dir(version)}/*.toml"
    base = f'version = {version}\nimports = ["{glob}"]\n' + (CRI_V2 if version == 2 else CRI_V3)
    layout = host_with(tmp_path, {where.config: base})
    found = detect.plan(layout)
    assert found.flavour is flavour and found.strategy == "dropin"
    assert found.target == f"{where.dropin_dir(version)}/90-ctd-decoder.toml"
    assert found.units == where.units
    text = rendered(found)
    if version == 2:
        # Loaded by containerd 1.6.20 through the k3s config's imports (pointed at the temp copy).
        (tmp_path / "dropin.toml").write_text(text)
        main = tmp_path / "main.toml"
        main.write_text(base.replace(glob, str(tmp_path / "dropin.toml")))
        merged = containerd_dump(main)
        assert merged["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == "/etc/containerd/certs.d"
    else:
        merged = tomllib.loads(text)
        assert merged["plugins"]["io.containerd.cri.v1.images"]["use_local_image_pull"] is True
    check_processors(merged)


@pytest.mark.parametrize("version", [2, 3])
def test_k3s_without_drop_in_directory_gets_a_template_on_the_base(tmp_path: Path, version: int) -> None:
    base = f"version = {version}\n" + (CRI_V2 if version == 2 else CRI_V3)
    layout = host_with(tmp_path, {K3S.config: base})
    found = detect.plan(layout)
    assert found.strategy == "template"
    assert found.target == K3S.template(version)
    assert found.target.endswith("config-v3.toml.tmpl" if version == 3 else "/config.toml.tmpl")
    text = rendered(found)
    first, _, rest = text.partition("\n")
    assert first == dropin.BASE_TEMPLATE
    assert "{{" not in rest, "k3s would execute Go template syntax after the base"
    # k3s renders the template as its base config followed by the rest.
    expanded = base + rest
    if version == 2:
        main = tmp_path / "rendered.toml"
        main.write_text(expanded)
        merged = containerd_dump(main)
    else:
        merged = tomllib.loads(expanded)
    check_processors(merged)


def test_k3s_never_started_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / K3S.config_dir.lstrip("/")).mkdir(parents=True)
    with pytest.raises(detect.DetectError, match="start k3s once"):
        detect.plan(HostLayout(str(tmp_path)))


def test_containerd_2_2_conf_d_gets_a_drop_in(tmp_path: Path) -> None:
    base = "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n" + CRI_V3
    found = detect.plan(host_with(tmp_path, {"/etc/containerd/config.toml": base}))
    assert (found.strategy, found.config_version, found.target) == (
        "dropin",
        3,
        "/etc/containerd/conf.d/90-ctd-decoder.toml",
    )
    merged = tomllib.loads(rendered(found))
    check_processors(merged)
    assert merged["plugins"]["io.containerd.cri.v1.images"]["image_decryption"]["key_model"] == "node"


def test_containerd_2_2_without_config_toml_uses_conf_d(tmp_path: Path) -> None:
    (tmp_path / "etc/containerd/conf.d").mkdir(parents=True)
    found = detect.plan(HostLayout(str(tmp_path)))
    assert (found.strategy, found.config_version) == ("dropin", 3)


def test_no_config_at_all_gets_a_config_of_our_own(tmp_path: Path) -> None:
    found = detect.plan(HostLayout(str(tmp_path)))
    assert found.strategy == "create"


def test_version_1_config_is_refused(tmp_path: Path) -> None:
    layout = host_with(tmp_path, {"/etc/containerd/config.toml": '[plugins.cri]\n  sandbox_image = "x"\n'})
    with pytest.raises(detect.DetectError, match="config version 1"):
        detect.plan(layout)


ORIGINALS = {
    "no imports": 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "pause"\n',
    "no version": '# a comment\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "pause"\n',
    "version last, no newline": "version = 2",
    "empty imports": "version = 2\nimports = []\n",
    "one import": 'version = 2\nimports = ["/etc/containerd/other.toml"]  # theirs\n',
    "multi-line, trailing comma": 'version = 2\nimports = [\n  "/a.toml",\n  "/b[1].toml", # x ]\n]\n[grpc]\n',
}


@pytest.mark.parametrize("name", list(ORIGINALS))
def test_imports_edit_adds_the_drop_in_and_reverts_byte_for_byte(name: str) -> None:
    original = ORIGINALS[name]
    target = "/etc/containerd/conf.d/90-ctd-decoder.toml"
    insertions = imports_edit.plan_insertions(original, target)
    edited = imports_edit.apply(original, insertions)
    parsed = tomllib.loads(edited)
    before = tomllib.loads(original)
    assert parsed["imports"] == [*before.get("imports", []), target]
    assert {k: v for k, v in parsed.items() if k != "imports"} == {k: v for k, v in before.items() if k != "imports"}
    assert imports_edit.revert(edited, insertions) == original
    # An administrator's later edit elsewhere does not stop an exact undo of ours.
    later = edited + "\n[debug]\n  level = 'debug'\n"
    assert imports_edit.revert(later, insertions) == original + "\n[debug]\n  level = 'debug'\n"


def test_imports_edit_gone_is_a_clear_error() -> None:
    original = "version = 2\n"
    insertions = imports_edit.plan_insertions(original, "/x.toml")
    with pytest.raises(imports_edit.EditError, match="remove it by hand"):
        imports_edit.revert("version = 2\nimports = []\n", insertions)


def test_imports_edit_loads_in_containerd(tmp_path: Path) -> None:
    """The edited config and the drop-in, as containerd 1.6.20 merges them: the host's CRI settings stay."""
    dropin_path = tmp_path / "conf.d" / "90-ctd-decoder.toml"
    dropin_path.parent.mkdir()
    dropin_path.write_text(dropin.dropin_toml(2, paths.DECODER, paths.KEYS_DIR, paths.KEYPROVIDER_CONFIG))
    original = "version = 2\n" + CRI_V2
    config = tmp_path / "config.toml"
    config.write_text(imports_edit.apply(original, imports_edit.plan_insertions(original, str(dropin_path))))
    merged = containerd_dump(config)
    check_processors(merged)
    assert merged["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_ledger_round_trips() -> None:
    ledger = InstallLedger("k3s", "template", 3, K3S.config, K3S.template(3), {"/a": "0" * 64}, {"/b": "c"}, ["/d"])
    assert InstallLedger.from_json(ledger.to_json()) == ledger
    with pytest.raises(ValueError):
        InstallLedger.from_json(b'{"format": 99}')
