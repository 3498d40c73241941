"""``ocicrypt encrypt|decrypt`` against imgcrypt's ``ctr-enc`` on a private containerd 1.6.20, every scheme.

Ours encrypts an oci-archive; ``ctr-enc images import --key`` unpacks it through the Go stream
processor (ctd-decoder-imgcrypt-1.1.7, the keys in its payload), then ``ctr-enc images decrypt`` and
``images export`` give back the plain layers. The other way round, ``ctr-enc images encrypt`` writes
an image that ``ocicrypt decrypt`` opens. One daemon and one set of keys serve the module (the
processors' environment names every scheme's configuration); each scheme costs a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.binaries import CTR_ENC, GO_DECODER_1, require_binary
from support.gpgkeys import GpgHome
from support.keygen import new_key, private_pem, write_key_pair
from support.oci import make_layout, ocicrypt, read_layers, skopeo
from support.pki import certificate, certificate_pem
from support.tempdirs import short_tempdir

from .daemons import Containerd, decoder_processors, remove_tree, require_tool

LAYERS = [{"etc/hello.txt": b"hello from ocicrypt\n"}, {"bin/tool": bytes(range(256)) * 1000}]
SCHEMES = ["jwe", "pkcs7", "pgp", "pkcs11", "provider"]
GPG_USER = "ctr-enc@example.com"
INSPECTED_SCHEME = {"jwe": "jwe", "pkcs7": "pkcs7", "pgp": "pgp", "pkcs11": "pkcs11", "provider": "provider.toolkp"}


@pytest.fixture(scope="module")
def schemes(tmp_path_factory: pytest.TempPathFactory, gpg_home: GpgHome) -> dict[str, Scheme]:
    directory = tmp_path_factory.mktemp("schemes")
    return {name: _make_scheme(name, directory / name, gpg_home) for name in SCHEMES}


@pytest.fixture(scope="module")
def containerd(tools: None, schemes: dict[str, Scheme]) -> Iterator[Containerd]:
    go_decoder = str(require_binary(GO_DECODER_1))
    env = {key: value for scheme in schemes.values() for key, value in scheme.extra_env.items()}
    base = short_tempdir("ctd-tools-")
    daemon = Containerd(base, processors=decoder_processors(go_decoder, None, env))
    try:
        daemon.start()
    except RuntimeError as err:
        remove_tree(base)
        pytest.fail(str(err))
    yield daemon
    daemon.stop()
    remove_tree(base)


@dataclass
class Scheme:
    """What both tools need for one scheme: recipient and key arguments, and the environment."""

    recipient: str
    keys: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)
    ctr_args: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.extra_env}


def _make_scheme(name: str, directory: Path, gpg: GpgHome) -> Scheme:
    directory.mkdir(parents=True, exist_ok=True)
    if name == "jwe":
        private, public, _ = write_key_pair(directory, "jwe", "rsa2048")
        return Scheme(f"jwe:{public}", [str(private)])
    if name == "pkcs7":
        key = new_key("rsa2048")
        (directory / "p7.key").write_bytes(private_pem(key))
        (directory / "p7.crt").write_bytes(certificate_pem(certificate(key, "ctr-enc")))
        scheme = Scheme(f"pkcs7:{directory / 'p7.crt'}", [str(directory / "p7.key")])
        scheme.ctr_args = ["--dec-recipient", f"pkcs7:{directory / 'p7.crt'}"]
        return scheme
    if name == "pgp":
        (directory / "secret.gpg").write_bytes(gpg.export_secret(GPG_USER))
        scheme = Scheme(f"pgp:{GPG_USER}", [str(directory / "secret.gpg")])
        scheme.extra_env["GNUPGHOME"] = str(gpg.path)
        scheme.ctr_args = ["--gpg-homedir", str(gpg.path)]
        return scheme
    if name == "pkcs11":
        from support.softhsm import SOFTHSM_MODULE, make_token, policy_file

        require_tool("softhsm2-util", "softhsm2")
        require_tool("pkcs11-tool", "opensc")
        token = make_token(directory / "hsm", "tools")
        token.generate_rsa("tools-key", "01")
        (directory / "hsm.yaml").write_bytes(token.key_file("tools-key"))
        (directory / "hsm-pub.der").write_bytes(token.public_key_der("tools-key"))
        policy = policy_file(directory, [SOFTHSM_MODULE])
        scheme = Scheme(f"pkcs11:{directory / 'hsm.yaml'}", [str(directory / "hsm.yaml")])
        # SoftHSM 2.6 decrypts OAEP with SHA-1 only.
        scheme.extra_env.update(OCICRYPT_CONFIG=str(policy), OCICRYPT_OAEP_HASHALG="sha1", **token.env())
        return scheme
    from support.providers import write_cmd_provider

    config, _ = write_cmd_provider(directory, "toolkp", "ok")
    scheme = Scheme("provider:toolkp", ["provider:toolkp"])
    scheme.extra_env["OCICRYPT_KEYPROVIDER_CONFIG"] = str(config)
    return scheme


@pytest.fixture(scope="module")
def gpg_home() -> Iterator[GpgHome]:
    home = GpgHome()
    try:
        home.generate("Ctr Enc", GPG_USER)
        yield home
    finally:
        home.close()


def _ctr_enc(
    containerd: Containerd, namespace: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    exe = require_binary(CTR_ENC)
    command = [str(exe), "-a", containerd.socket, "-n", namespace, *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, check=False)


def _key_args(flag: str, scheme: Scheme) -> list[str]:
    return [arg for key in scheme.keys for arg in (flag, key)]


def _plain_digests(layout: Path) -> list[str]:
    return [layer.descriptor["digest"] for layer in read_layers(layout)]


@pytest.mark.parametrize("name", SCHEMES)
def test_our_encrypted_archive_imports_and_decrypts_with_ctr_enc(
    name: str, containerd: Containerd, schemes: dict[str, Scheme], tmp_path: Path
) -> None:
    scheme = schemes[name]
    make_layout(tmp_path / "plain", LAYERS)
    ocicrypt(
        "encrypt",
        "--recipient",
        scheme.recipient,
        f"oci:{tmp_path / 'plain'}:v1",
        f"oci-archive:{tmp_path / 'enc.tar'}:v1",
        env=scheme.env,
    )
    namespace = f"ours-{name}"
    if name != "provider":  # the node's key provider unwraps whatever key is given
        wrong, _, _ = write_key_pair(tmp_path, "wrong", "p256")
        refused = _ctr_enc(containerd, namespace, scheme.env, "images", "import", "--key", str(wrong),
                           "--base-name", "example.com/app", str(tmp_path / "enc.tar"))  # fmt: skip
        assert refused.returncode != 0, "ctr-enc imported our encrypted image with an unrelated key"
    imported = _ctr_enc(containerd, namespace, scheme.env, "images", "import", *_key_args("--key", scheme),
                        *scheme.ctr_args, "--base-name", "example.com/app", str(tmp_path / "enc.tar"))  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    decrypted = _ctr_enc(containerd, namespace, scheme.env, "images", "decrypt", *_key_args("--key", scheme),
                         *scheme.ctr_args, "example.com/app:v1", "example.com/app:plain")  # fmt: skip
    assert decrypted.returncode == 0, decrypted.stderr
    exported = _ctr_enc(
        containerd, namespace, scheme.env, "images", "export", str(tmp_path / "dec.tar"), "example.com/app:plain"
    )
    assert exported.returncode == 0, exported.stderr
    skopeo("copy", "-q", f"oci-archive:{tmp_path / 'dec.tar'}:plain", f"oci:{tmp_path / 'dec'}:v1")
    assert _plain_digests(tmp_path / "dec") == _plain_digests(tmp_path / "plain")


@pytest.mark.parametrize("name", SCHEMES)
def test_ctr_enc_encrypted_image_decrypts_with_ours(
    name: str, containerd: Containerd, schemes: dict[str, Scheme], gpg_home: GpgHome, tmp_path: Path
) -> None:
    scheme = schemes[name]
    make_layout(tmp_path / "plain", LAYERS)
    skopeo("copy", "-q", f"oci:{tmp_path / 'plain'}:v1", f"oci-archive:{tmp_path / 'plain.tar'}:v1")
    namespace = f"go-{name}"
    imported = _ctr_enc(
        containerd,
        namespace,
        scheme.env,
        "images",
        "import",
        "--base-name",
        "example.com/app",
        "--no-unpack",
        str(tmp_path / "plain.tar"),
    )
    assert imported.returncode == 0, imported.stderr
    encrypted = _ctr_enc(containerd, namespace, scheme.env, "images", "encrypt", "--recipient", scheme.recipient,
                         *(["--gpg-homedir", str(gpg_home.path)] if name == "pgp" else []),
                         "example.com/app:v1", "example.com/app:enc")  # fmt: skip
    assert encrypted.returncode == 0, encrypted.stderr
    exported = _ctr_enc(
        containerd, namespace, scheme.env, "images", "export", str(tmp_path / "enc.tar"), "example.com/app:enc"
    )
    assert exported.returncode == 0, exported.stderr
    report = json.loads(ocicrypt("inspect", "--json", f"oci-archive:{tmp_path / 'enc.tar'}:enc", env=scheme.env).stdout)
    [layer] = {json.dumps(layer["schemes"]) for layer in report["platforms"][0]["layers"]}
    assert list(json.loads(layer)) == [INSPECTED_SCHEME[name]]
    assert all(json.loads(layer).values()), layer
    certificate = ["--dec-recipient", scheme.ctr_args[1]] if name == "pkcs7" else []  # ctr-enc's spelling
    source, target = f"oci-archive:{tmp_path / 'enc.tar'}:enc", f"oci:{tmp_path / 'dec'}:v1"
    ocicrypt("decrypt", *_key_args("--key", scheme), *certificate, source, target, env=scheme.env)
    assert _plain_digests(tmp_path / "dec") == _plain_digests(tmp_path / "plain")
