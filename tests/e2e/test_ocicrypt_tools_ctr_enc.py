"""``ocicrypt encrypt|decrypt`` against imgcrypt's ``ctr-enc`` on a private containerd 1.6.20, every scheme.

Ours encrypts an oci-archive; ``ctr-enc images import --key`` unpacks it through the Go stream
processor (ctd-decoder-imgcrypt-1.1.7, the keys in its payload), then ``ctr-enc images decrypt`` and
``images export`` give back the plain layers. The other way round, ``ctr-enc images encrypt`` writes
an image that ``ocicrypt decrypt`` opens. One daemon and one set of keys serve the module (the
processors' environment names every scheme's configuration); each scheme costs a few seconds.

Docker schema 2 images (a manifest and a manifest list that skopeo pushes as v2s2 and ctr-enc pulls and
exports) are encrypted by both tools to the same media types, read by the other tool, and pulled by
containerd's CRI: about 10 s in all, 2 s of it per containerd line for the pull.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.binaries import CTR_ENC, GO_DECODER_1, require_binary
from support.gpgkeys import GpgHome
from support.keygen import new_key, private_pem, write_key_pair
from support.oci import (
    image_layers,
    image_media_types,
    make_index_layout,
    make_layout,
    manifest_documents,
    ocicrypt,
    read_layers,
    skopeo,
)
from support.pki import certificate, certificate_pem
from support.tempdirs import short_tempdir

from .daemons import Containerd, Registry, decoder_processors, require_tool, running
from .node import Image, Node, push_layout

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
    with running(Containerd(base, processors=decoder_processors(go_decoder, None, env)), base) as daemon:
        yield daemon


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


def _ctr_enc_ok(containerd: Containerd, namespace: str, env: dict[str, str], *args: str) -> None:
    result = _ctr_enc(containerd, namespace, env, *args)
    assert result.returncode == 0, f"ctr-enc {' '.join(args)}: {result.stderr}"


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


# --- Docker schema 2 images ---------------------------------------------------------------------------
# imgcrypt (images/encryption/encryption.go, cryptChildren) writes a new OCI manifest around the encrypted
# layers: descriptor application/vnd.oci.image.manifest.v1+json, the Docker config descriptor as it was,
# rootfs.diff.tar.gzip layers as tar+gzip+encrypted, unselected layers untouched; a manifest list becomes
# an OCI index whose unchanged manifests keep their Docker descriptors.

DOCKER_NAMESPACE = "docker"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
JWE_ANNOTATION = "org.opencontainers.image.enc.keys.jwe"
PUBOPTS_ANNOTATION = "org.opencontainers.image.enc.pubopts"
DOCKER_PLATFORMS = ["linux/amd64", "linux/arm64"]


@dataclass
class DockerImage:
    """An image with Docker media types in the module's containerd (namespace ``docker``) and exported."""

    plain: Path  # the OCI layout it was made from
    ref: str
    archive: Path  # ``ctr-enc images export``: an oci-archive that keeps the Docker media types


def _unpacked(archive: Path) -> Path:
    target = archive.with_suffix(".d")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def _digests_per_platform(layout: Path, ref: str) -> dict[str, list[str]]:
    return {p: [layer["digest"] for layer in layers] for p, layers in image_layers(layout, ref).items()}


@pytest.fixture(scope="module")
def docker_images(
    containerd: Containerd, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, DockerImage]:
    """A Docker manifest and manifest list as operators get them: ``skopeo copy --format v2s2`` to the
    registry, ``ctr-enc images pull`` and ``images export`` (skopeo would convert them to OCI media types,
    and cannot read an oci-archive with Docker ones)."""
    directory = tmp_path_factory.mktemp("docker")
    images = {}
    for kind in ("manifest", "list"):
        plain = directory / f"plain-{kind}"
        if kind == "manifest":
            make_layout(plain, LAYERS)
        else:
            make_index_layout(plain, DOCKER_PLATFORMS)
        ref = f"{registry.host}/docker/{kind}:v1"
        skopeo(
            "copy", "-q", "--all", "--format", "v2s2", "--dest-tls-verify=false", f"oci:{plain}:v1", f"docker://{ref}"
        )
        env = dict(os.environ)
        _ctr_enc_ok(containerd, DOCKER_NAMESPACE, env, "images", "pull", "--plain-http", "--all-platforms", ref)
        archive = directory / f"{kind}.tar"
        _ctr_enc_ok(containerd, DOCKER_NAMESPACE, env, "images", "export", "--all-platforms", str(archive), ref)
        images[kind] = DockerImage(plain, ref, archive)
    return images


def _go_encrypted(
    containerd: Containerd, image: DockerImage, recipient: str, selection: list[str], target: Path
) -> str:
    """``ctr-enc images encrypt`` of ``image`` under a new tag, exported to ``target``; return the tag."""
    tag = f"goenc-{uuid.uuid4().hex[:8]}"
    name = f"{image.ref.rsplit(':', 1)[0]}:{tag}"
    env = dict(os.environ)
    encrypt = ["images", "encrypt", "--recipient", recipient, *selection, image.ref, name]
    _ctr_enc_ok(containerd, DOCKER_NAMESPACE, env, *encrypt)
    _ctr_enc_ok(containerd, DOCKER_NAMESPACE, env, "images", "export", "--all-platforms", str(target), name)
    return tag


def test_docker_images_are_exported_with_docker_media_types(docker_images: dict[str, DockerImage]) -> None:
    manifest = image_media_types(_unpacked(docker_images["manifest"].archive))
    assert manifest == {
        "image": DOCKER_MANIFEST,
        "-": {"manifest": DOCKER_MANIFEST, "config": DOCKER_CONFIG, "layers": [(DOCKER_LAYER, [])] * len(LAYERS)},
    }
    listed = image_media_types(_unpacked(docker_images["list"].archive))
    assert listed["image"] == DOCKER_LIST
    assert {p: listed[p] for p in DOCKER_PLATFORMS} == {
        p: {"manifest": DOCKER_MANIFEST, "config": DOCKER_CONFIG, "layers": [(DOCKER_LAYER, [])]}
        for p in DOCKER_PLATFORMS
    }


@pytest.mark.parametrize(
    ("kind", "selection"),
    [("manifest", []), ("manifest", ["--layer=-1"]), ("list", []), ("list", ["--platform=linux/arm64"])],
    ids=["manifest", "manifest-top-layer", "list", "list-one-platform"],
)
def test_docker_image_encrypts_to_the_media_types_ctr_enc_writes(
    kind: str,
    selection: list[str],
    containerd: Containerd,
    schemes: dict[str, Scheme],
    docker_images: dict[str, DockerImage],
    tmp_path: Path,
) -> None:
    image, recipient = docker_images[kind], schemes["jwe"].recipient
    tag = _go_encrypted(containerd, image, recipient, selection, tmp_path / "go.tar")
    ours = tmp_path / "ours.tar"
    ocicrypt(
        "encrypt", "--recipient", recipient, *selection, f"oci-archive:{image.archive}:v1", f"oci-archive:{ours}:v1"
    )
    go_layout, our_layout = _unpacked(tmp_path / "go.tar"), _unpacked(ours)
    mine = image_media_types(our_layout)
    assert mine == image_media_types(go_layout, tag)
    encrypted = ("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", [JWE_ANNOTATION, PUBOPTS_ANNOTATION])
    assert encrypted in [layer for p, shape in mine.items() if p != "image" for layer in shape["layers"]]
    # imgcrypt leaves the mediaType member out of the manifests it writes; ours names OCI's, because
    # skopeo guesses a manifest without one from its config's media type and would push it as Docker's.
    assert all("mediaType" not in document for document in _changed_manifests(go_layout, tag))
    assert all(document["mediaType"] == OCI_MANIFEST for document in _changed_manifests(our_layout, "v1"))


def _changed_manifests(layout: Path, ref: str) -> list[dict[str, Any]]:
    shape = image_media_types(layout, ref)
    documents = manifest_documents(layout, ref)
    return [documents[p] for p in documents if shape[p]["manifest"] == OCI_MANIFEST]


@pytest.mark.parametrize("kind", ["manifest", "list"])
def test_our_encrypted_docker_image_imports_and_decrypts_with_ctr_enc(
    kind: str,
    containerd: Containerd,
    schemes: dict[str, Scheme],
    docker_images: dict[str, DockerImage],
    tmp_path: Path,
) -> None:
    image, scheme = docker_images[kind], schemes["jwe"]
    ours = tmp_path / "ours.tar"
    ocicrypt("encrypt", "--recipient", scheme.recipient, f"oci-archive:{image.archive}:v1", f"oci-archive:{ours}:v1")
    namespace, plain = f"docker-ours-{kind}", f"{image.ref.rsplit(':', 1)[0]}:plain"
    # The archive keeps the source's io.containerd.image.name, so ctr-enc imports it as image.ref.
    keys = _key_args("--key", scheme)
    _ctr_enc_ok(containerd, namespace, scheme.env, "images", "import", "--all-platforms", *keys, str(ours))
    _ctr_enc_ok(containerd, namespace, scheme.env, "images", "decrypt", *keys, image.ref, plain)
    export = ["images", "export", "--all-platforms", str(tmp_path / "dec.tar"), plain]
    _ctr_enc_ok(containerd, namespace, scheme.env, *export)
    assert _digests_per_platform(_unpacked(tmp_path / "dec.tar"), "plain") == _digests_per_platform(image.plain, "v1")


@pytest.mark.parametrize("kind", ["manifest", "list"])
def test_ctr_enc_encrypted_docker_image_decrypts_and_inspects_with_ours(
    kind: str,
    containerd: Containerd,
    schemes: dict[str, Scheme],
    docker_images: dict[str, DockerImage],
    tmp_path: Path,
) -> None:
    image, scheme = docker_images[kind], schemes["jwe"]
    tag = _go_encrypted(containerd, image, scheme.recipient, [], tmp_path / "go.tar")
    source = f"oci-archive:{tmp_path / 'go.tar'}:{tag}"
    report = json.loads(ocicrypt("inspect", "--json", source).stdout)
    layers = [layer for platform in report["platforms"] for layer in platform["layers"]]
    assert len(layers) == sum(len(lay) for lay in image_layers(image.plain).values())
    assert all(list(layer["schemes"]) == ["jwe"] and layer["schemes"]["jwe"] for layer in layers), layers
    ocicrypt("decrypt", *_key_args("--key", scheme), source, f"oci:{tmp_path / 'dec'}:v1")
    assert _digests_per_platform(tmp_path / "dec", "v1") == _digests_per_platform(image.plain, "v1")


def test_cri_pull_of_our_encrypted_docker_image(
    pip_decoder: str,
    registry: Registry,
    nodes: Callable[..., Node],
    schemes: dict[str, Scheme],
    docker_images: dict[str, DockerImage],
    tmp_path: Path,
) -> None:
    """skopeo pushes ours (an OCI manifest around the Docker config) and containerd's CRI pulls it."""
    image, scheme = docker_images["manifest"], schemes["jwe"]
    ocicrypt(
        "encrypt", "--recipient", scheme.recipient, f"oci-archive:{image.archive}:v1", f"oci:{tmp_path / 'ours'}:v1"
    )
    ref = push_layout(registry, tmp_path / "ours")
    node = nodes(pip_decoder, registry, {"node.pem": Path(scheme.keys[0]).read_bytes()})
    reports = node.pull_and_verify(Image(ref, image.plain, LAYERS))
    assert {r.media_type for r in reports} == {"application/vnd.oci.image.layer.v1.tar+gzip+encrypted"}
    client = node.client()
    manifest = client.read_json(str(client.image_target(ref)["digest"]))
    assert (manifest["mediaType"], manifest["config"]["mediaType"]) == (OCI_MANIFEST, DOCKER_CONFIG)
