"""The node-ready package: install.sh stages the packaged executable, and the shipped containerd
config snippet, pointed at that staged tree, decrypts a CRI pull; with --warm the staged bundle serves as
the warm server its small client hands layers to; the release tarball holds what a node needs; the
Debian package installs with apt-get, enables the warm socket, decrypts through containerd's built-in
entries (with and without the warm server) and removes cleanly."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.e2e.client import ContainerdClient
from support.e2e.daemons import Containerd, Registry, remove_tree
from support.e2e.node import ZSTD, push_encrypted, small_layers, verify_pulled
from support.e2e.packaged import packaged_release
from support.e2e.schemes import Recipient
from support.install_routes import exists_in_stage, named_paths, node_readme_examples, node_readme_paths
from support.keygen import new_key, private_pem, public_pem
from support.oci import layer_digests, make_layout
from support.snippets import (
    INSTALLED_DECODER,
    PACKAGING,
    REPO,
    SNIPPETS,
    check_processors,
    load_snippet,
    snippet_for_node,
)
from support.tempdirs import short_tempdir
from support.warm import WarmServer

from ctd_decoder.decoder.warm.protocol import DEFAULT_SOCKET, SOCKET_ENV

WARM_UNITS = ("ctd-decoder-warm.socket", "ctd-decoder-warm.service")
CONTAINERD_1 = "/usr/bin/containerd"  # Debian's 1.6.20


def run_install(
    *args: str, env: dict[str, str] | None = None, script: Path = PACKAGING / "install.sh"
) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash, "bash is needed for packaging/install.sh"
    return subprocess.run(
        [bash, str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_config_snippets_register_both_payload_ids_and_the_node_key_model() -> None:
    for name in SNIPPETS:
        config = load_snippet(name)
        check_processors(config)
        for processor in config["stream_processors"].values():
            assert processor["path"] == INSTALLED_DECODER
        plugins = config["plugins"]
        if name.endswith("v3"):
            assert plugins["io.containerd.cri.v1.images"]["image_decryption"]["key_model"] == "node"
        else:
            assert plugins["io.containerd.grpc.v1.cri"]["image_decryption"]["key_model"] == "node"
    v3 = load_snippet("containerd-v3")
    assert v3["plugins"]["io.containerd.cri.v1.images"]["use_local_image_pull"] is True


def test_install_script_then_shipped_config_decrypts_a_cri_pull(
    packaged_decoder: str, registry: Registry, recipients: Callable[[str], Recipient], tmp_path: Path
) -> None:
    recipient = recipients("jwe-rsa2048")
    stage = short_tempdir("ctd-stage-")
    containerd: Containerd | None = None
    try:
        kp_config = tmp_path / "ocicrypt_keyprovider.conf"
        kp_config.write_text('{"key-providers": {}}\n')
        result = run_install(
            "--from",
            str(Path(packaged_decoder).parent),
            "--keyprovider-config",
            str(kp_config),
            env={"DESTDIR": str(stage)},
        )
        assert result.returncode == 0, result.stderr
        exe = stage / "usr/local/bin/ctd-decoder"
        assert exe.is_symlink() and os.readlink(exe) == "../lib/ctd-decoder/ctd-decoder"
        keys = stage / "etc/containerd/ocicrypt/keys"
        assert stat.S_IMODE(keys.stat().st_mode) == 0o700
        assert (stage / "etc/containerd/ocicrypt/ocicrypt_keyprovider.conf").read_text() == kp_config.read_text()
        # Installing again replaces the bundle and keeps the keys.
        (keys / "node.pem").write_bytes(recipient.key_files["jwe-rsa2048.pem"])
        again = run_install("--from", str(Path(packaged_decoder).parent), "--destdir", str(stage))
        assert again.returncode == 0, again.stderr
        assert (keys / "node.pem").exists()

        snippet = snippet_for_node("containerd-v2", str(exe), stage / "etc/containerd/ocicrypt")
        image = push_encrypted(registry, tmp_path, [recipient])
        containerd = Containerd(
            stage / "containerd", [], [registry.host], extra_toml="\n" + snippet, image_decryption=False
        )
        containerd.start()
        with ContainerdClient(containerd.socket, "k8s.io") as client:
            client.pull_image(image.ref)
            verify_pulled(client, image)
    finally:
        if containerd is not None:
            print(containerd.log_tail())
            containerd.stop()
        remove_tree(stage)


def unit_exec_start(unit: Path) -> list[str]:
    """The command line of a unit's ``ExecStart=``."""
    lines = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    return lines[0].removeprefix("ExecStart=").split()


def pull_through_the_warm_server_then_without_it(
    client: ContainerdClient,
    server_command: list[str],
    run_dir: Path,
    registry: Registry,
    recipient: Recipient,
    workdir: Path,
) -> None:
    """``client``'s containerd runs the small client with ``CTD_DECODER_WARM_SOCKET=run_dir/warm.sock``:
    with ``server_command`` socket-activated there, each layer of a pull is logged by the server; once it
    is stopped, the next pull decodes in-process (the client runs the bundle) and the server logs nothing."""
    warm_image = push_encrypted(registry, workdir / "warm", [recipient], small_layers(3))
    cold_image = push_encrypted(registry, workdir / "cold", [recipient], small_layers(3))
    server = WarmServer(run_dir, command=server_command)
    try:
        listening = f"ctd-decoder-warm: listening on the socket systemd passed (pid {server.process.pid}, pool "
        assert any(line.startswith(listening) for line in server.lines), server.lines
        client.pull_image(warm_image.ref)
        verify_pulled(client, warm_image)
        layers = server.wait_for_layers(len(warm_image.diff_ids))
        assert len(layers) == len(warm_image.diff_ids), server.lines
        assert all(" ok " in line for line in layers), layers
    finally:
        server.stop()
    assert server.process.returncode == 0, server.lines
    client.pull_image(cold_image.ref)
    verify_pulled(client, cold_image)
    assert server.layer_lines() == layers


def test_install_warm_bundle_is_the_server_its_small_client_hands_over_to_or_falls_back_from(
    packaged_decoder: str, registry: Registry, recipients: Callable[[str], Recipient], tmp_path: Path
) -> None:
    """``install.sh --warm`` stages the bundle as ``ctd-decoder-warm`` and the small client as
    ``ctd-decoder``; a CRI pull through the shipped snippet goes through the staged server, started as
    its staged unit says, and with the server stopped the client's fallback to the bundle decrypts."""
    recipient = recipients("jwe-rsa2048")
    stage = short_tempdir("ctd-stage-")
    containerd: Containerd | None = None
    try:
        result = run_install("--from", str(Path(packaged_decoder).parent), "--destdir", str(stage), "--warm")
        assert result.returncode == 0, result.stderr
        bin_dir = stage / "usr/local/bin"
        assert os.readlink(bin_dir / "ctd-decoder") == "../lib/ctd-decoder/ctd-decoder-client"
        assert os.readlink(bin_dir / "ctd-decoder-warm") == "../lib/ctd-decoder/ctd-decoder"
        exec_start = unit_exec_start(stage / "etc/systemd/system/ctd-decoder-warm.service")
        assert exec_start == ["/usr/local/bin/ctd-decoder-warm"]
        etc = stage / "etc/containerd/ocicrypt"
        (etc / "keys/node.pem").write_bytes(recipient.key_files["jwe-rsa2048.pem"])
        snippet = snippet_for_node("containerd-v2", str(bin_dir / "ctd-decoder"), etc)
        run_dir = stage / "run/ctd-decoder"
        containerd = Containerd(
            stage / "containerd",
            [],
            [registry.host],
            extra_toml="\n" + snippet,
            image_decryption=False,
            env={SOCKET_ENV: str(run_dir / "warm.sock")},
        )
        containerd.start()
        with ContainerdClient(containerd.socket, "k8s.io") as client:
            server = [f"{stage}{exec_start[0]}", *exec_start[1:]]
            pull_through_the_warm_server_then_without_it(client, server, run_dir, registry, recipient, tmp_path)
    finally:
        if containerd is not None:
            print(containerd.log_tail())
            containerd.stop()
        remove_tree(stage)


def test_install_script_refuses_a_missing_bundle(tmp_path: Path) -> None:
    result = run_install("--from", str(tmp_path / "nothing"), "--destdir", str(tmp_path / "stage"))
    assert result.returncode == 1
    assert "run packaging/build.sh first" in result.stderr
    assert not (tmp_path / "stage" / "usr").exists()


# Every component the bundle redistributes whose licence must travel with it (see packaging/licenses.py).
LICENSED = [
    "cryptography",
    "grpcio",
    "protobuf",
    "pyyaml",
    "python-gnupg",
    "python-pkcs11",
    "pyinstaller",
    "debian-libpython3.11",
    "debian-libssl3",
    "debian-libstdc++6",
]
KEYS_DIR = Path("/etc/containerd/ocicrypt/keys")
UNIT_DIR = Path("/lib/systemd/system")  # Debian 12's systemdsystemunitdir (pkg-config systemd)
SOCKET_WANTS = Path("/etc/systemd/system/sockets.target.wants/ctd-decoder-warm.socket")
DSH_STATE = Path("/var/lib/systemd/deb-systemd-helper-enabled")  # what deb-systemd-helper enabled
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # systemd's default


def check_licences(directory: Path) -> None:
    index = (directory / "README").read_text()
    for name in LICENSED:
        assert any((directory / name).iterdir()), f"no licence text for {name}"
        assert f"\n{name.removeprefix('debian-')} " in index, name
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in (directory / "debian-libpython3.11" / "copyright").read_text()
    assert "OpenSSL" in (directory / "debian-libssl3" / "copyright").read_text()


def run_ocicrypt(exe: Path | str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run an installed ``ocicrypt`` (the bundle started under that name)."""
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=300, check=False)


def broken_config(directory: Path) -> Path:
    """A containerd 1.x config whose gzip entry runs a decoder no PATH has and whose .tar entry takes no
    zstd: the doctor's fixes then name the install's decoder and its snippet."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    layer = "application/vnd.oci.image.layer.v1.tar"
    path.write_text(
        "version = 2\n"
        '[stream_processors."io.containerd.ocicrypt.decoder.v1.tar.gzip"]\n'
        f'  accepts = ["{layer}+gzip+encrypted"]\n'
        f'  returns = "{layer}+gzip"\n'
        '  path = "ctd-decoder-that-no-path-has"\n'
        '  args = ["--decryption-keys-path", "/etc/containerd/ocicrypt/keys"]\n'
    )
    return path


def check_staged_doctor(stage: Path, prefix: str, workdir: Path) -> None:
    """The staged bundle, started as ``ocicrypt``, is the doctor; its fixes name the staged decoder and the
    staged snippet (it finds them from its own place, as on a node), and every path they name exists."""
    ocicrypt = stage / prefix.lstrip("/") / "bin/ocicrypt"
    assert os.readlink(ocicrypt) == "../lib/ctd-decoder/ctd-decoder"
    config = broken_config(workdir / f"doctor-{stage.name}")
    result = run_ocicrypt(
        ocicrypt, "doctor", "--json", "--containerd-config", config, "--containerd", "/usr/bin/containerd"
    )
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result
    findings = json.loads(result.stdout)
    fixes = [finding["fix"] for finding in findings if finding["fix"]]
    snippet = stage / prefix.lstrip("/") / "share/doc/ctd-decoder/examples/containerd/config-v2.toml"
    decoder = stage / prefix.lstrip("/") / "bin/ctd-decoder"
    assert any(f"(as in {snippet})" in fix for fix in fixes), fixes
    assert any(fix.endswith(f"e.g. {decoder}") for fix in fixes), fixes
    operator_files = ("/etc/containerd/config.toml", "/etc/containerd/ocicrypt/keys")
    missing = [p for fix in fixes for p in named_paths(fix) if p not in operator_files and not os.path.lexists(p)]
    assert not missing, f"the doctor's fixes name {missing}"


def check_staged_image_tools(ocicrypt: Path, workdir: Path) -> None:
    """The rest of the command is in the bundle too: encrypt, inspect and decrypt an image with it."""
    key = new_key("p256")
    workdir.mkdir()
    (workdir / "key.pem").write_bytes(private_pem(key))
    (workdir / "key.pub").write_bytes(public_pem(key))
    make_layout(workdir / "plain", [{"a.txt": b"first layer\n"}, {"b.txt": b"second layer\n"}])
    plain, encrypted, decrypted = (f"oci:{workdir / name}:v1" for name in ("plain", "encrypted", "decrypted"))
    steps = [
        ("encrypt", "--recipient", f"jwe:{workdir / 'key.pub'}", plain, encrypted),
        ("inspect", "--json", encrypted),
        ("decrypt", "--key", str(workdir / "key.pem"), encrypted, decrypted),
    ]
    for step in steps:
        result = run_ocicrypt(ocicrypt, *step)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (step, result)
    assert layer_digests(workdir / "decrypted") == layer_digests(workdir / "plain")
    assert layer_digests(workdir / "encrypted") != layer_digests(workdir / "plain")


def test_release_tarball_holds_the_installer_snippets_readme_and_licences(tmp_path: Path) -> None:
    archive = packaged_release("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert {m.uname for m in tar.getmembers()} == {"root"}
        tar.extractall(tmp_path, filter="data")
    assert {name.split("/")[0] for name in names} == {archive.name.removesuffix(".tar.gz")}
    root = tmp_path / archive.name.removesuffix(".tar.gz")
    assert (root / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    assert (root / "README.md").read_text() == (PACKAGING / "NODE-README.md").read_text()
    assert (root / "config.toml.example").read_text() == (REPO / "config.toml.example").read_text()
    for path in SNIPPETS.values():
        relative = path.relative_to(PACKAGING)
        assert (root / relative).read_text() == path.read_text(), relative
    shipped_units = {p.name: p.read_bytes() for p in (root / "systemd").iterdir()}
    assert shipped_units == {p.name: p.read_bytes() for p in (PACKAGING / "systemd").iterdir()}
    check_licences(root / "ctd-decoder" / "licenses")

    # install.sh run from the unpacked tarball finds the bundle beside it.
    stage = tmp_path / "stage"
    result = run_install("--destdir", str(stage), script=root / "install.sh")
    assert result.returncode == 0, result.stderr
    assert "/usr/local/share/doc/ctd-decoder/examples/containerd/config-v2.toml" in result.stdout
    assert "check the node first: /usr/local/bin/ocicrypt doctor" in result.stdout
    exe = stage / "usr/local/bin/ctd-decoder"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("ctd-decoder version "), version
    check_licences(stage / "usr/local/lib/ctd-decoder/licenses")
    assert (stage / "usr/local/share/doc/ctd-decoder/LICENSE").read_text() == (REPO / "LICENSE").read_text()
    check_staged_doctor(stage, "/usr/local", tmp_path)
    check_staged_image_tools(stage / "usr/local/bin/ocicrypt", tmp_path / "images")

    # NODE-README.md's --warm recipe works from the unpacked tarball too: it stages both units.
    warm_stage = tmp_path / "warm-stage"
    result = run_install("--destdir", str(warm_stage), "--warm", script=root / "install.sh")
    assert result.returncode == 0, result.stderr
    units = warm_stage / "etc/systemd/system"
    assert sorted(p.name for p in units.iterdir()) == sorted(WARM_UNITS)
    assert (units / "ctd-decoder-warm.socket").read_bytes() == (
        PACKAGING / "systemd/ctd-decoder-warm.socket"
    ).read_bytes()
    assert unit_exec_start(units / "ctd-decoder-warm.service") == ["/usr/local/bin/ctd-decoder-warm"]
    named = node_readme_paths()["tarball"] + node_readme_examples("tarball")
    assert [path for path in named if not exists_in_stage(warm_stage, path)] == []


def apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", "-y", *args], capture_output=True, text=True, env=env, timeout=600)


def dpkg_status() -> str:
    """dpkg's status of the ctd-decoder package ("" if dpkg does not know it)."""
    query = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "ctd-decoder"], capture_output=True, text=True)
    return query.stdout if query.returncode == 0 else ""


def check_installed_doctor(containerd: Containerd, key: Path) -> None:
    """``ocicrypt doctor``, as the package installed it, on the running containerd (built-in entries,
    systemd's PATH): it finds the process, the decoder on its PATH and the key; the one warning (no zstd
    entry) names the package's own snippet, which exists."""
    result = run_ocicrypt(
        "/usr/bin/ocicrypt", "doctor", "--json", "--containerd-config", containerd.directory / "config.toml"
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result
    findings = json.loads(result.stdout)
    ok = " ".join(f["message"] for f in findings if f["status"] == "ok")
    assert containerd.process is not None and f"containerd pid {containerd.process.pid}" in ok, findings
    assert "found at /usr/bin/ctd-decoder on containerd's PATH" in ok, findings
    assert str(KEYS_DIR) in ok and str(key) in ok, findings
    (zstd,) = [f for f in findings if f["status"] != "ok"]
    snippet = "/usr/share/doc/ctd-decoder/examples/containerd/config-v2.toml"
    assert zstd["check"] == "containerd.processor.tar+zstd+encrypted" and f"(as in {snippet})" in zstd["fix"], zstd
    assert Path(snippet).is_file()


def test_deb_installs_with_apt_get_decrypts_with_containerd_defaults_and_removes_cleanly(
    registry: Registry, recipients: Callable[[str], Recipient], tmp_path: Path
) -> None:
    """On the machine itself: containerd 1.6.20 with its built-in stream processors (no configuration),
    started before the package is installed, decrypts a CRI pull once ``apt-get install`` has put
    ``/usr/bin/ctd-decoder`` on its PATH: the small warm client, which runs the bundle since no warm
    server runs here (no systemd); the package's containerd snippet, as installed, decrypts a zstd
    image; the installed server, started as its unit starts it, decodes a pull's layers, and with it
    stopped the next pull decodes in-process; a reinstall keeps the socket disabled if the administrator
    disabled it; ``apt-get remove`` then leaves only the keys still in use, and ``apt-get purge``
    nothing of the warm socket's state."""
    deb = packaged_release("*.deb")
    if dpkg_status() or Path("/usr/bin/ctd-decoder").exists() or KEYS_DIR.exists():
        pytest.fail("ctd-decoder or /etc/containerd/ocicrypt/keys is already on this machine: this test installs it")
    if Path("/run/systemd/system").is_dir():
        pytest.fail("systemd runs this machine: the package would start its real warm socket; this test needs none")
    recipient = recipients("jwe-rsa2048")
    image = push_encrypted(registry, tmp_path, [recipient])
    base = short_tempdir("ctd-deb-")
    containerd = Containerd(base / "cd", [], [registry.host], env={"PATH": SYSTEM_PATH})
    key = KEYS_DIR / f"e2e-{uuid.uuid4().hex[:8]}.pem"
    try:
        containerd.start()
        result = apt_get("install", str(deb))
        assert result.returncode == 0, result.stdout + result.stderr
        assert os.readlink("/usr/bin/ctd-decoder") == "../lib/ctd-decoder/ctd-decoder-client"
        assert os.readlink("/usr/bin/ctd-decoder-warm") == "../lib/ctd-decoder/ctd-decoder"
        assert os.readlink("/usr/bin/ocicrypt") == "../lib/ctd-decoder/ctd-decoder"
        assert stat.S_IMODE(KEYS_DIR.stat().st_mode) == 0o700
        docs = Path("/usr/share/doc/ctd-decoder")
        assert (docs / "copyright").is_file() and (docs / "README.md").is_file()
        for path in SNIPPETS.values():
            example = (docs / "examples" / path.relative_to(PACKAGING)).read_text()
            assert example == path.read_text().replace(INSTALLED_DECODER, "/usr/bin/ctd-decoder"), path
        check_licences(Path("/usr/lib/ctd-decoder/licenses"))
        named = node_readme_paths()["deb"] + node_readme_examples("deb")
        assert [path for path in named if not os.path.lexists(path)] == []
        # The units where a package puts them, the socket enabled by postinst (without a running systemd).
        listed = subprocess.run(["dpkg", "-L", "ctd-decoder"], capture_output=True, text=True).stdout.splitlines()
        for unit in WARM_UNITS:
            assert str(UNIT_DIR / unit) in listed and (UNIT_DIR / unit).is_file(), unit
            assert not (Path("/etc/systemd/system") / unit).exists(), unit
        assert os.readlink(SOCKET_WANTS) == str(UNIT_DIR / "ctd-decoder-warm.socket")
        enabled = subprocess.run(["systemctl", "is-enabled", *WARM_UNITS], capture_output=True, text=True)
        assert enabled.stdout.split() == ["enabled", "disabled"], enabled  # the service starts with its socket
        assert (DSH_STATE / "ctd-decoder-warm.socket.dsh-also").is_file()
        exec_start = unit_exec_start(UNIT_DIR / "ctd-decoder-warm.service")
        assert exec_start == ["/usr/bin/ctd-decoder-warm"]

        key.write_bytes(recipient.key_files["jwe-rsa2048.pem"])
        key.chmod(0o600)
        check_installed_doctor(containerd, key)
        assert not os.path.lexists(DEFAULT_SOCKET), "no warm server runs here: the client must run the bundle"
        with ContainerdClient(containerd.socket, "k8s.io") as client:
            client.pull_image(image.ref)
            verify_pulled(client, image)
        # zstd layers need the shipped snippet: the package's copy, as it is, on a second containerd.
        snippet = (docs / "examples/containerd/config-v2.toml").read_text().replace("version = 2\n", "")
        zstd_node = Containerd(base / "cd-zstd", [], [registry.host], extra_toml="\n" + snippet, image_decryption=False)
        zstd_image = push_encrypted(registry, tmp_path, [recipient], None, ZSTD)
        zstd_node.start()
        try:
            with ContainerdClient(zstd_node.socket, "k8s.io") as client:
                client.pull_image(zstd_image.ref)
                verify_pulled(client, zstd_image)
        finally:
            zstd_node.stop()
        # The installed server, as its unit runs it, on a private socket that a third containerd's
        # built-in entries are sent to (the unit's own path is left alone on this shared machine).
        run_dir = base / "warm"
        warm_node = Containerd(
            base / "cd-warm", [], [registry.host], env={"PATH": SYSTEM_PATH, SOCKET_ENV: str(run_dir / "warm.sock")}
        )
        warm_node.start()
        try:
            with ContainerdClient(warm_node.socket, "k8s.io") as client:
                pull_through_the_warm_server_then_without_it(client, exec_start, run_dir, registry, recipient, tmp_path)
        finally:
            warm_node.stop()

        # An upgrade keeps an administrator's choice: a disabled socket stays disabled.
        systemctl = ["systemctl", "--quiet", "--no-reload"]
        subprocess.run([*systemctl, "disable", "ctd-decoder-warm.socket"], check=True, capture_output=True)
        again = apt_get("install", "--reinstall", str(deb))
        assert again.returncode == 0, again.stdout + again.stderr
        assert not os.path.lexists(SOCKET_WANTS), "the upgrade enabled a socket the administrator had disabled"
        subprocess.run([*systemctl, "enable", "ctd-decoder-warm.socket"], check=True, capture_output=True)

        removed = apt_get("remove", "ctd-decoder")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert key.is_file(), "removing the package must keep the node's keys"
        gone = [Path("/usr/bin/ctd-decoder"), Path("/usr/bin/ctd-decoder-warm"), Path("/usr/bin/ocicrypt")]
        gone += [Path("/usr/lib/ctd-decoder"), docs]
        for path in [*gone, *(UNIT_DIR / unit for unit in WARM_UNITS), SOCKET_WANTS]:
            assert not os.path.lexists(path), path
        assert not list(DSH_STATE.rglob("ctd-decoder-warm*")), "deb-systemd-helper still records the socket"
        assert dpkg_status() == "deinstall ok config-files", dpkg_status()  # its postrm waits for a purge
        purged = apt_get("purge", "ctd-decoder")
        assert purged.returncode == 0, purged.stdout + purged.stderr
        assert f"directory '{KEYS_DIR}' not empty so not removed" in purged.stdout + purged.stderr
        assert key.is_file(), "purging the package must keep the node's keys"
        assert "installed" not in dpkg_status().replace("not-installed", ""), dpkg_status()
    finally:
        if dpkg_status():
            apt_get("purge", "ctd-decoder")
        key.unlink(missing_ok=True)
        for directory in (KEYS_DIR, KEYS_DIR.parent):  # what the package created, if it is empty now
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        print(containerd.log_tail())
        containerd.stop()
        remove_tree(base)
