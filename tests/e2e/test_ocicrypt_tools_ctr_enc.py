"""``ocicrypt encrypt|decrypt`` against the Go toolchain on a private containerd 1.6.20, every scheme.

What ``ctr-enc images import --key`` does to containerd, the project's client does
(:func:`e2e.node.import_with_payload`): ours encrypts, the blobs go into containerd's content store and every
layer is unpacked by a Diff ``Apply`` whose payload carries the keys as ``ctr-enc --key`` would, with the
project's Go reference decoder (Debian's ocicrypt 1.0.3) as the stream processor. Then, as ``ctr-enc images
decrypt`` does, the encrypted blobs are read back from the content store, decrypted by the Go reference
and written back as the plain blobs (containerd checks their digests). The other way round, skopeo 1.9.3
(Go ocicrypt 1.0.3) encrypts an image that ``ocicrypt decrypt`` opens.

ocicrypt 1.0.3 has no PKCS#11 and no key providers: for those two schemes the tests assert the Go side's
refusal (the reference decoder's error, skopeo's error) instead; the recorded verdicts of imgcrypt 1.1.7 for
them live in tests/fixtures/go-ocicrypt (tests/interop). One daemon and one set of keys serve the module
(the processors' environment names every scheme's configuration); each scheme costs a few seconds.

Docker schema 2 images (a manifest and a manifest list that skopeo pushes as v2s2 and Debian's ctr pulls
and exports) are encrypted by ours to the media types imgcrypt writes, unpacked through the Go reference,
encrypted by skopeo from the registry and read by ours, and pulled by containerd's CRI.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.decoder import Result, run_decoder
from support.e2e.client import ContainerdClient, go_decoder_refused, rpc_error
from support.e2e.daemons import Containerd, Registry, decoder_processors, require_tool, running
from support.e2e.node import Image, Node, apply_with_payload, import_with_payload, push_layout, verify_pulled
from support.gpgkeys import GpgHome
from support.keygen import new_key, private_pem, write_key_pair
from support.oci import (
    diff_ids,
    image_layers,
    image_media_types,
    make_index_layout,
    make_layout,
    manifest_documents,
    ocicrypt,
    read_layers,
    sha256_digest,
    skopeo,
)
from support.pki import certificate, certificate_pem
from support.references import fastest_go_reference
from support.tempdirs import short_tempdir

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt.config import DecryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.tools.key_arguments import decrypt_config

LAYERS = [{"etc/hello.txt": b"hello from ocicrypt\n"}, {"bin/tool": bytes(range(256)) * 1000}]
SCHEMES = ["jwe", "pkcs7", "pgp", "pkcs11", "provider"]
GPG_USER = "ctr-enc@example.com"
INSPECTED_SCHEME = {"jwe": "jwe", "pkcs7": "pkcs7", "pgp": "pgp"}
# ocicrypt 1.0.3 cannot unwrap these: the Go reference decoder's answer to a payload with the scheme's keys
# (it knows neither the pkcs11-yamls nor a provider's parameter, so it has no key for the layer) ...
GO_REFERENCE_REFUSES = {
    "pkcs11": "call to DecryptLayer failed: missing private key needed for decryption",
    "provider": "call to DecryptLayer failed: missing private key needed for decryption",
}
# ... and skopeo 1.9.3's answer to ``--encryption-key`` with the scheme.
SKOPEO_REFUSES = {"pkcs11": "Provided protocol not recognized", "provider": "Provided protocol not recognized"}


@pytest.fixture(scope="module")
def schemes(tmp_path_factory: pytest.TempPathFactory, gpg_home: GpgHome) -> dict[str, Scheme]:
    directory = tmp_path_factory.mktemp("schemes")
    return {name: _make_scheme(name, directory / name, gpg_home) for name in SCHEMES}


@pytest.fixture(scope="module")
def containerd(tools: None, schemes: dict[str, Scheme]) -> Iterator[Containerd]:
    """Debian's containerd with the Go reference decoder as both ocicrypt stream processors (no keys
    directory: the keys come in the payload)."""
    reference = str(fastest_go_reference().path)
    env = {key: value for scheme in schemes.values() for key, value in scheme.extra_env.items()}
    base = short_tempdir("ctd-tools-")
    with running(Containerd(base, processors=decoder_processors(reference, None, env)), base) as daemon:
        yield daemon


@dataclass
class Scheme:
    """What both tools need for one scheme: recipient and key arguments, and the environment."""

    recipient: str
    keys: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)
    dec_recipients: list[str] = field(default_factory=list)  # ctr-enc's --dec-recipient

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.extra_env}

    def decrypt_config(self) -> DecryptConfig:
        """What ``ctr-enc ... --key`` puts into the payload for these keys."""
        return decrypt_config(self.keys, self.dec_recipients)


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
        scheme.dec_recipients = [f"pkcs7:{directory / 'p7.crt'}"]
        return scheme
    if name == "pgp":
        (directory / "secret.gpg").write_bytes(gpg.export_secret(GPG_USER))
        scheme = Scheme(f"pgp:{GPG_USER}", [str(directory / "secret.gpg")])
        scheme.extra_env["GNUPGHOME"] = str(gpg.path)
        return scheme
    if name == "pkcs11":
        from support.softhsm import SOFTHSM_MODULE, make_token, policy_file

        require_tool("softhsm2-util", "softhsm2")
        require_tool("pkcs11-tool", "opensc")
        token = make_token(directory / "hsm", "tools")
        token.generate_rsa("tools-key", "01")
        (directory / "hsm.yaml").write_bytes(token.key_file("tools-key"))
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


def _plain_digests(layout: Path) -> list[str]:
    return [layer.descriptor["digest"] for layer in read_layers(layout)]


def run_go_reference(blob: bytes, payload: bytes, env: dict[str, str]) -> Result:
    """Run the Go reference decoder as containerd does: ``blob`` on stdin, ``payload`` on fd 3 (a pipe)."""
    return run_decoder(blob, payload, env=env, command=[str(fastest_go_reference().path)])


def go_decrypt_in_store(
    client: ContainerdClient, layers: list[dict[str, Any]], dc: DecryptConfig, env: dict[str, str]
) -> list[str]:
    """What ``ctr-enc images decrypt --key`` does to containerd, with the Go reference decoder as the Go
    side: every encrypted layer is read from the content store, decrypted, and written back as the plain
    blob (containerd refuses a blob whose digest differs from the one announced). Returns the plain digests."""
    digests = []
    for layer in layers:
        blob = client.read_content(layer["digest"])
        descriptor = Descriptor(layer["mediaType"], layer["digest"], layer["size"], dict(layer.get("annotations", {})))
        result = run_go_reference(blob, encode_payload(Payload(dc, descriptor)), env)
        assert result.returncode == 0, result.stderr
        digest = sha256_digest(result.stdout)
        client.write_content(f"e2e-plain-{digest}", result.stdout, digest)
        digests.append(digest)
    return digests


@pytest.mark.parametrize("name", SCHEMES)
def test_our_encrypted_image_imports_and_decrypts_with_keys_in_the_payload_through_the_go_reference(
    name: str, containerd: Containerd, schemes: dict[str, Scheme], tmp_path: Path
) -> None:
    scheme = schemes[name]
    plain, encrypted = tmp_path / "plain", tmp_path / "enc"
    make_layout(plain, LAYERS)
    ocicrypt("encrypt", "--recipient", scheme.recipient, f"oci:{plain}:v1", f"oci:{encrypted}:v1", env=scheme.env)
    client = ContainerdClient(containerd.socket, f"ours-{name}-{uuid.uuid4().hex[:6]}")
    with client:
        if name in GO_REFERENCE_REFUSES:
            refused = rpc_error(
                lambda: import_with_payload(client, encrypted, "example.com/app:v1", scheme.decrypt_config())
            )
            assert go_decoder_refused(refused, GO_REFERENCE_REFUSES[name]), refused
            return
        wrong, _, _ = write_key_pair(tmp_path, "wrong", "p256")
        refused = rpc_error(
            lambda: apply_with_payload(client, read_layers(encrypted), decrypt_config=decrypt_config([str(wrong)]))
        )
        assert "call to DecryptLayer failed" in refused, refused
        applied = import_with_payload(client, encrypted, "example.com/app:v1", scheme.decrypt_config())
        assert applied == diff_ids(plain)
        verify_pulled(client, Image("example.com/app:v1", plain, LAYERS))
        layers = [layer.descriptor for layer in read_layers(encrypted)]
        assert go_decrypt_in_store(client, layers, scheme.decrypt_config(), scheme.extra_env) == _plain_digests(plain)


def _skopeo_encrypt(scheme: Scheme, source: str, target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("skopeo")
    assert exe, "skopeo is not installed (apt-get install skopeo); the test runner installs it"
    command = [exe, "copy", "-q", *extra, "--encryption-key", scheme.recipient, source, target]
    return subprocess.run(command, capture_output=True, text=True, env=scheme.env, timeout=300, check=False)


@pytest.mark.parametrize("name", SCHEMES)
def test_go_encrypted_image_decrypts_with_ours(name: str, schemes: dict[str, Scheme], tmp_path: Path) -> None:
    """skopeo 1.9.3 (Go ocicrypt 1.0.3) encrypts; ``ocicrypt inspect`` names the scheme and ``ocicrypt
    decrypt`` gives back the plain layers."""
    scheme = schemes[name]
    make_layout(tmp_path / "plain", LAYERS)
    encrypted = _skopeo_encrypt(scheme, f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1")
    if name in SKOPEO_REFUSES:
        assert encrypted.returncode != 0 and SKOPEO_REFUSES[name] in encrypted.stderr, encrypted.stderr
        return
    assert encrypted.returncode == 0, encrypted.stderr
    source = f"oci:{tmp_path / 'enc'}:v1"
    report = json.loads(ocicrypt("inspect", "--json", source, env=scheme.env).stdout)
    [layer] = {json.dumps(layer["schemes"]) for layer in report["platforms"][0]["layers"]}
    assert list(json.loads(layer)) == [INSPECTED_SCHEME[name]]
    assert all(json.loads(layer).values()), layer
    certificate = [arg for value in scheme.dec_recipients for arg in ("--dec-recipient", value)]
    keys = [arg for key in scheme.keys for arg in ("--key", key)]
    ocicrypt("decrypt", *keys, *certificate, source, f"oci:{tmp_path / 'dec'}:v1", env=scheme.env)
    assert _plain_digests(tmp_path / "dec") == _plain_digests(tmp_path / "plain")


# --- Docker schema 2 images ---------------------------------------------------------------------------
# imgcrypt (images/encryption/encryption.go, cryptChildren) writes a new OCI manifest around the encrypted
# layers: descriptor application/vnd.oci.image.manifest.v1+json, the Docker config descriptor as it was,
# rootfs.diff.tar.gzip layers as tar+gzip+encrypted, unselected layers untouched; a manifest list becomes
# an OCI index whose unchanged manifests keep their Docker descriptors. Ours must write the same shapes.

DOCKER_NAMESPACE = "docker"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ENCRYPTED_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
JWE_ANNOTATION = "org.opencontainers.image.enc.keys.jwe"
PUBOPTS_ANNOTATION = "org.opencontainers.image.enc.pubopts"
DOCKER_PLATFORMS = ["linux/amd64", "linux/arm64"]


@dataclass
class DockerImage:
    """An image with Docker media types in the registry and in the module's containerd (namespace
    ``docker``), and exported by Debian's ``ctr images export``."""

    plain: Path  # the OCI layout it was made from
    ref: str
    archive: Path  # an oci-archive that keeps the Docker media types


def _unpacked(archive: Path) -> Path:
    target = archive.with_suffix(".d")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def _digests_per_platform(layout: Path, ref: str) -> dict[str, list[str]]:
    return {p: [layer["digest"] for layer in layers] for p, layers in image_layers(layout, ref).items()}


def _ctr(containerd: Containerd, *args: str) -> None:
    ctr = require_tool("ctr", "containerd")
    command = [ctr, "-a", containerd.socket, "-n", DOCKER_NAMESPACE, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"ctr {' '.join(args)}: {result.stderr}"


@pytest.fixture(scope="module")
def docker_images(
    containerd: Containerd, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, DockerImage]:
    """A Docker manifest and manifest list as operators get them: ``skopeo copy --format v2s2`` to the
    registry, Debian's ``ctr images pull`` and ``images export`` (skopeo would convert them to OCI media
    types, and cannot read an oci-archive with Docker ones)."""
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
        _ctr(containerd, "images", "pull", "--plain-http", "--all-platforms", ref)
        archive = directory / f"{kind}.tar"
        _ctr(containerd, "images", "export", "--all-platforms", str(archive), ref)
        images[kind] = DockerImage(plain, ref, archive)
    return images


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


def _imgcrypt_shape(plain_shape: dict[str, Any], selection: list[str]) -> dict[str, Any]:
    """The media types imgcrypt's cryptChildren writes for ``plain_shape`` encrypted to one JWE recipient
    with ``--layer=-1`` / ``--platform=os/arch`` selections (none: everything)."""
    layer_selected = {int(s.split("=", 1)[1]) for s in selection if s.startswith("--layer=")}
    platforms = {s.split("=", 1)[1] for s in selection if s.startswith("--platform=")}
    encrypted = (ENCRYPTED_LAYER, [JWE_ANNOTATION, PUBOPTS_ANNOTATION])
    shape: dict[str, Any] = {}
    for platform, manifest in plain_shape.items():
        if platform == "image" or (platforms and platform not in platforms):
            shape[platform] = manifest
            continue
        count = len(manifest["layers"])
        chosen = {n % count for n in layer_selected} if layer_selected else set(range(count))
        layers = [encrypted if n in chosen else layer for n, layer in enumerate(manifest["layers"])]
        shape[platform] = {"manifest": OCI_MANIFEST, "config": manifest["config"], "layers": layers}
    shape["image"] = OCI_MANIFEST if "-" in plain_shape else OCI_INDEX
    return shape


@pytest.mark.parametrize(
    ("kind", "selection"),
    [("manifest", []), ("manifest", ["--layer=-1"]), ("list", []), ("list", ["--platform=linux/arm64"])],
    ids=["manifest", "manifest-top-layer", "list", "list-one-platform"],
)
def test_docker_image_encrypts_to_the_media_types_imgcrypt_writes(
    kind: str, selection: list[str], schemes: dict[str, Scheme], docker_images: dict[str, DockerImage], tmp_path: Path
) -> None:
    image, recipient = docker_images[kind], schemes["jwe"].recipient
    ours = tmp_path / "ours.tar"
    ocicrypt(
        "encrypt", "--recipient", recipient, *selection, f"oci-archive:{image.archive}:v1", f"oci-archive:{ours}:v1"
    )
    our_layout = _unpacked(ours)
    plain_shape = image_media_types(_unpacked(image.archive))
    assert image_media_types(our_layout) == _imgcrypt_shape(plain_shape, selection)
    # imgcrypt leaves the mediaType member out of the manifests it writes; ours names OCI's, because
    # skopeo guesses a manifest without one from its config's media type and would push it as Docker's.
    assert all(document["mediaType"] == OCI_MANIFEST for document in _changed_manifests(our_layout, "v1"))


def _changed_manifests(layout: Path, ref: str) -> list[dict[str, Any]]:
    shape = image_media_types(layout, ref)
    documents = manifest_documents(layout, ref)
    return [documents[p] for p in documents if shape[p]["manifest"] == OCI_MANIFEST]


@pytest.mark.parametrize("kind", ["manifest", "list"])
def test_our_encrypted_docker_image_imports_and_decrypts_through_the_go_reference(
    kind: str, containerd: Containerd, schemes: dict[str, Scheme], docker_images: dict[str, DockerImage], tmp_path: Path
) -> None:
    """As ``ctr-enc images import --all-platforms --key`` then ``images decrypt --key``: every platform's
    blobs into the content store, the default platform (linux/amd64) unpacked through the Go reference,
    then every platform's layers decrypted by it back to the plain Docker layers."""
    image, scheme = docker_images[kind], schemes["jwe"]
    ours = tmp_path / "ours.tar"
    ocicrypt("encrypt", "--recipient", scheme.recipient, f"oci-archive:{image.archive}:v1", f"oci-archive:{ours}:v1")
    layout = _unpacked(ours)
    with ContainerdClient(containerd.socket, f"docker-ours-{kind}-{uuid.uuid4().hex[:6]}") as client:
        applied = import_with_payload(client, layout, image.ref, scheme.decrypt_config())
        platform = "-" if kind == "manifest" else "linux/amd64"
        plain_tars = [sha256_digest(gzip_member(image.plain, d["digest"])) for d in image_layers(image.plain)[platform]]
        assert applied == plain_tars
        encrypted = image_layers(layout, "v1")
        decrypted = {
            p: go_decrypt_in_store(client, layers, scheme.decrypt_config(), {}) for p, layers in encrypted.items()
        }
    assert decrypted == _digests_per_platform(image.plain, "v1")


def gzip_member(layout: Path, digest: str) -> bytes:
    """The uncompressed tar of a gzip layer blob of ``layout``."""
    return gzip.decompress((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes())


@pytest.mark.parametrize("kind", ["manifest", "list"])
def test_go_encrypted_docker_image_decrypts_and_inspects_with_ours(
    kind: str, schemes: dict[str, Scheme], docker_images: dict[str, DockerImage], tmp_path: Path
) -> None:
    """skopeo 1.9.3 encrypts the v2s2 image straight from the registry (it writes OCI media types)."""
    image, scheme = docker_images[kind], schemes["jwe"]
    target = f"oci:{tmp_path / 'go'}:v1"
    encrypted = _skopeo_encrypt(scheme, f"docker://{image.ref}", target, "--src-tls-verify=false", "--all")
    assert encrypted.returncode == 0, encrypted.stderr
    report = json.loads(ocicrypt("inspect", "--json", target).stdout)
    layers = [layer for platform in report["platforms"] for layer in platform["layers"]]
    assert len(layers) == sum(len(lay) for lay in image_layers(image.plain).values())
    assert all(list(layer["schemes"]) == ["jwe"] and layer["schemes"]["jwe"] for layer in layers), layers
    ocicrypt("decrypt", "--key", scheme.keys[0], target, f"oci:{tmp_path / 'dec'}:v1")
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
    assert {r.media_type for r in reports} == {ENCRYPTED_LAYER}
    client = node.client()
    manifest = client.read_json(str(client.image_target(ref)["digest"]))
    assert (manifest["mediaType"], manifest["config"]["mediaType"]) == (OCI_MANIFEST, DOCKER_CONFIG)
