"""``--json`` of encrypt, decrypt and recipients: parsed and checked against the image written (its files,
skopeo's view of it, and ``inspect --json`` of it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from support.keygen import write_key_pair
from support.oci import image_layers, make_index_layout, make_layout, ocicrypt, skopeo
from support.pki import write_pkcs7_pair

LAYERS = [{"etc/hello.txt": b"hello\n"}, {"bin/tool": bytes(range(256)) * 2000}]
INSPECT_LAYER_KEYS = ("index", "mediaType", "size", "digest", "encrypted", "schemes")


def _fingerprint(spki_der: bytes) -> str:
    return "SHA256:" + hashlib.sha256(spki_der).hexdigest()[:16]


def _index_entry(layout: Path) -> dict[str, Any]:
    [entry] = json.loads((layout / "index.json").read_text())["manifests"]
    return dict(entry)


def _run_json(*args: str) -> dict[str, Any]:
    result = ocicrypt(*args, "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _matches_inspect(report: dict[str, Any], layout: Path, ref: str = "v1") -> None:
    """The report says of the written image what ``inspect --json`` says of it."""
    inspected = json.loads(ocicrypt("inspect", "--json", f"oci:{layout}:{ref}").stdout)
    assert report["reference"] == inspected["reference"]
    assert (report["mediaType"], report["digest"]) == (inspected["mediaType"], inspected["digest"])
    for ours, theirs in zip(report["platforms"], inspected["platforms"], strict=True):
        assert (ours["platform"], ours["manifest"], ours["mediaType"]) == (
            theirs["platform"],
            theirs["manifest"],
            theirs["mediaType"],
        )
        assert [{k: layer[k] for k in INSPECT_LAYER_KEYS if k in layer} for layer in ours["layers"]] == theirs["layers"]


def test_encrypt_json_names_what_was_written_and_for_whom(tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    private, public, _ = write_key_pair(tmp_path, "k", "p256")
    _, cert = write_pkcs7_pair(tmp_path, "p7")
    report = _run_json(
        "encrypt", "--recipient", f"jwe:{public}", "--recipient", f"pkcs7:{cert}",
        f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1",
    )  # fmt: skip
    assert (report["command"], report["changed"]) == ("encrypt", True)
    assert report["source"] == f"oci:{tmp_path / 'plain'}:v1"
    assert report["destination"] == f"oci:{tmp_path / 'enc'}:v1"
    entry = _index_entry(tmp_path / "enc")
    assert (report["mediaType"], report["digest"]) == (entry["mediaType"], entry["digest"])
    assert report["sourceDigest"] == _index_entry(tmp_path / "plain")["digest"]
    assert json.loads(skopeo("inspect", "--raw", f"oci:{tmp_path / 'enc'}:v1").stdout)["layers"] == [
        {k: layer[k] for k in ("mediaType", "digest", "size")} | {"annotations": layer["annotations"]}
        for layer in image_layers(tmp_path / "enc")["-"]
    ]
    [platform] = report["platforms"]
    assert platform["manifest"] == entry["digest"] and platform["sourceManifest"] == report["sourceDigest"]
    written, before = image_layers(tmp_path / "enc")["-"], image_layers(tmp_path / "plain")["-"]
    for layer, new, old in zip(platform["layers"], written, before, strict=True):
        assert layer["action"] == "encrypted" and layer["encrypted"] is True
        assert (layer["mediaType"], layer["digest"], layer["size"]) == (new["mediaType"], new["digest"], new["size"])
        assert layer["source"] == {"mediaType": old["mediaType"], "size": old["size"], "digest": old["digest"]}
        assert sorted(layer["schemes"]) == ["jwe", "pkcs7"]
    public_der = load_pem_public_key(public.read_bytes()).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    cert_der = (
        x509.load_pem_x509_certificate(cert.read_bytes())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    assert report["recipients"] == [
        {"scheme": "jwe", "recipient": str(public), "fingerprint": _fingerprint(public_der)},
        {"scheme": "pkcs7", "recipient": str(cert), "fingerprint": _fingerprint(cert_der)},
    ]
    _matches_inspect(report, tmp_path / "enc")
    # The decrypted image is the plain one again, and the report says so digest by digest.
    back = _run_json("decrypt", "--key", str(private), f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'dec'}:v1")
    assert [
        (layer["action"], layer["digest"], layer["source"]["digest"]) for layer in back["platforms"][0]["layers"]
    ] == [("decrypted", old["digest"], new["digest"]) for old, new in zip(before, written, strict=True)]
    assert back["digest"] == json.loads(skopeo("inspect", f"oci:{tmp_path / 'dec'}:v1").stdout)["Digest"]
    assert "recipients" not in back
    _matches_inspect(back, tmp_path / "dec")


def test_recipients_json_reports_kept_and_changed_layers(tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    private, public, _ = write_key_pair(tmp_path, "k", "p256")
    _, other, _ = write_key_pair(tmp_path, "other", "rsa2048")
    ocicrypt("encrypt", "--recipient", f"jwe:{public}", f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1")
    before = image_layers(tmp_path / "enc")["-"]
    key_args = ["--key", str(private), "--recipient", f"jwe:{other}"]
    added = _run_json("recipients", "add", "--layer", "-1", *key_args, f"oci:{tmp_path / 'enc'}:v1",
                      f"oci:{tmp_path / 'more'}:v1")  # fmt: skip
    base, top = added["platforms"][0]["layers"]
    assert (base["action"], top["action"]) == ("unchanged", "recipients added")
    assert [base["digest"], top["digest"]] == [layer["digest"] for layer in before]  # layer data untouched
    assert base["schemes"]["jwe"] == ["ECDH-ES+A256KW(P-256)"]
    assert sorted(top["schemes"]["jwe"]) == ["ECDH-ES+A256KW(P-256)", "RSA-OAEP"]
    assert added["recipients"][0]["scheme"] == "jwe" and added["recipients"][0]["fingerprint"].startswith("SHA256:")
    _matches_inspect(added, tmp_path / "more")
    rotated = _run_json("recipients", "rotate", *key_args, f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'rot'}:v1")
    assert [layer["action"] for layer in rotated["platforms"][0]["layers"]] == ["rotated", "rotated"]
    after = image_layers(tmp_path / "rot")["-"]
    for layer, new, old in zip(rotated["platforms"][0]["layers"], after, before, strict=True):
        assert layer["digest"] == new["digest"] != old["digest"] == layer["source"]["digest"]
        assert layer["schemes"] == {"jwe": ["RSA-OAEP"]}
    _matches_inspect(rotated, tmp_path / "rot")


def test_json_of_an_index_with_one_platform_selected(tmp_path: Path) -> None:
    make_index_layout(tmp_path / "plain", ["linux/amd64", "linux/arm64"])
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    report = _run_json("encrypt", "--platform", "linux/arm64", "--recipient", f"jwe:{public}",
                       f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1")  # fmt: skip
    entry = _index_entry(tmp_path / "enc")
    assert report["mediaType"] == "application/vnd.oci.image.index.v1+json" == entry["mediaType"]
    assert report["digest"] == entry["digest"] != report["sourceDigest"]
    amd64, arm64 = report["platforms"]
    assert amd64["platform"] == "linux/amd64" and amd64["manifest"] == amd64["sourceManifest"]
    assert [layer["action"] for layer in amd64["layers"]] == ["unchanged"]
    assert arm64["manifest"] != arm64["sourceManifest"]
    assert [layer["action"] for layer in arm64["layers"]] == ["encrypted"]
    _matches_inspect(report, tmp_path / "enc")


def test_json_of_decrypting_a_plain_image_says_nothing_changed(tmp_path: Path) -> None:
    make_layout(tmp_path / "plain", LAYERS)
    result = ocicrypt("decrypt", "--json", f"oci:{tmp_path / 'plain'}:v1", f"oci-archive:{tmp_path / 'out.tar'}:v1")
    report = json.loads(result.stdout)
    assert "is an unchanged copy" in result.stderr
    assert report["changed"] is False and report["digest"] == report["sourceDigest"]
    assert report["destination"] == f"oci-archive:{tmp_path / 'out.tar'}:v1"
    assert {layer["action"] for layer in report["platforms"][0]["layers"]} == {"unchanged"}
    assert json.loads(skopeo("inspect", f"oci-archive:{tmp_path / 'out.tar'}:v1").stdout)["Digest"] == report["digest"]
