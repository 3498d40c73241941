"""``ocicrypt recipients add|rotate`` and ``encrypt`` on encrypted layers, checked with skopeo and ours."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.keygen import write_key_pair
from support.oci import image_layers, layer_digests, make_layout, ocicrypt, skopeo

LAYERS = [{"etc/hello.txt": b"hello\n"}, {"bin/tool": bytes(range(256)) * 2000}]
JWE = "org.opencontainers.image.enc.keys.jwe"


def _old_key_image_and_new_key(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Make ``plain`` and ``enc`` (skopeo-encrypted for an "old" RSA key) and a "new" P-256 pair;
    return the old private key and the new private and public keys."""
    make_layout(tmp_path / "plain", LAYERS)
    old, old_pub, _ = write_key_pair(tmp_path, "old", "rsa2048")
    skopeo(
        "copy", "-q", "--encryption-key", f"jwe:{old_pub}", f"oci:{tmp_path / 'plain'}:v1", f"oci:{tmp_path / 'enc'}:v1"
    )
    new, new_pub, _ = write_key_pair(tmp_path, "new", "p256")
    return old, new, new_pub


def test_added_recipient_decrypts_alone_with_skopeo_and_ours_and_layer_data_is_untouched(tmp_path: Path) -> None:
    old, new, new_pub = _old_key_image_and_new_key(tmp_path)
    ocicrypt(
        "recipients", "add", "--key", str(old), "--recipient", f"jwe:{new_pub}",
        f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'more'}:v1",
    )  # fmt: skip
    before, after = image_layers(tmp_path / "enc")["-"], image_layers(tmp_path / "more")["-"]
    assert [layer["digest"] for layer in after] == [layer["digest"] for layer in before]
    assert all(
        a[JWE].startswith(b[JWE] + ",")
        for a, b in ((x["annotations"], y["annotations"]) for x, y in zip(after, before, strict=True))
    )
    skopeo("copy", "-q", "--decryption-key", str(new), f"oci:{tmp_path / 'more'}:v1", f"oci:{tmp_path / 'go'}:v1")
    ocicrypt("decrypt", "--key", str(new), f"oci:{tmp_path / 'more'}:v1", f"oci:{tmp_path / 'ours'}:v1")
    skopeo("copy", "-q", "--decryption-key", str(old), f"oci:{tmp_path / 'more'}:v1", f"oci:{tmp_path / 'go-old'}:v1")
    for target in ("go", "ours", "go-old"):
        assert layer_digests(tmp_path / target) == layer_digests(tmp_path / "plain")


def test_encrypting_an_encrypted_image_adds_recipients_instead_of_encrypting_twice(tmp_path: Path) -> None:
    old, new, new_pub = _old_key_image_and_new_key(tmp_path)
    ocicrypt(
        "encrypt",
        "--key",
        str(old),
        "--recipient",
        f"jwe:{new_pub}",
        f"oci:{tmp_path / 'enc'}:v1",
        f"oci:{tmp_path / 'more'}:v1",
    )
    assert [layer["digest"] for layer in image_layers(tmp_path / "more")["-"]] == [
        layer["digest"] for layer in image_layers(tmp_path / "enc")["-"]
    ]
    skopeo("copy", "-q", "--decryption-key", str(new), f"oci:{tmp_path / 'more'}:v1", f"oci:{tmp_path / 'go'}:v1")
    assert layer_digests(tmp_path / "go") == layer_digests(tmp_path / "plain")


def test_rotated_image_refuses_the_removed_key_and_opens_with_the_new_one(tmp_path: Path) -> None:
    old, new, new_pub = _old_key_image_and_new_key(tmp_path)
    ocicrypt(
        "recipients", "rotate", "--key", str(old), "--recipient", f"jwe:{new_pub}",
        f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'rotated'}:v1",
    )  # fmt: skip
    before, after = image_layers(tmp_path / "enc")["-"], image_layers(tmp_path / "rotated")["-"]
    assert all(a["digest"] != b["digest"] for a, b in zip(after, before, strict=True))
    refused = ocicrypt(
        "decrypt", "--key", str(old), f"oci:{tmp_path / 'rotated'}:v1", f"oci:{tmp_path / 'old'}:v1", check=False
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("ocicrypt: ") and refused.stderr.count("\n") >= 1
    assert not (tmp_path / "old").exists()
    command = ["skopeo", "copy", "-q", "--decryption-key", str(old)]
    command += [f"oci:{tmp_path / 'rotated'}:v1", f"oci:{tmp_path / 'go-old'}:v1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0, "skopeo decrypted the rotated image with the removed key"
    skopeo("copy", "-q", "--decryption-key", str(new), f"oci:{tmp_path / 'rotated'}:v1", f"oci:{tmp_path / 'go'}:v1")
    assert layer_digests(tmp_path / "go") == layer_digests(tmp_path / "plain")
