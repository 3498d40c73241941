"""Bad input to the image subcommands: one clear message, exit 1, no traceback, DST absent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.keygen import new_key, private_pem, write_key_pair
from support.oci import image_blobs, layer_digests, make_layout, ocicrypt, read_layers, skopeo

LAYERS = [{"etc/hello.txt": b"hello\n"}, {"bin/tool": bytes(range(256)) * 2000}]


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    make_layout(tmp_path / "plain", LAYERS)
    return tmp_path / "plain"


def _fails(*args: str) -> str:
    result = ocicrypt(*args, check=False)
    assert result.returncode == 1, result
    assert result.stderr.startswith("ocicrypt: "), result.stderr
    assert result.stdout == ""
    return result.stderr


def _no_leftovers(directory: Path) -> None:
    assert [p.name for p in directory.iterdir() if ".ocicrypt-" in p.name] == []


def test_missing_blob_is_named_and_nothing_is_written(plain: Path, tmp_path: Path) -> None:
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    digest = read_layers(plain)[1].descriptor["digest"]
    (plain / "blobs" / "sha256" / digest.split(":")[1]).unlink()
    message = _fails("encrypt", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci:{tmp_path / 'out'}")
    assert f"blob {digest} is missing" in message
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)


def test_tampered_plain_layer_is_refused_by_its_digest(plain: Path, tmp_path: Path) -> None:
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    digest = read_layers(plain)[1].descriptor["digest"]
    path = plain / "blobs" / "sha256" / digest.split(":")[1]
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    message = _fails("encrypt", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci:{tmp_path / 'out'}")
    assert f"blob {digest} does not match its digest" in message
    assert not (tmp_path / "out").exists()


def test_tampered_encrypted_layer_is_refused_on_decryption(plain: Path, tmp_path: Path) -> None:
    private, public, _ = write_key_pair(tmp_path, "k", "p256")
    ocicrypt("encrypt", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci:{tmp_path / 'enc'}")
    digest = read_layers(tmp_path / "enc")[1].descriptor["digest"]
    path = tmp_path / "enc" / "blobs" / "sha256" / digest.split(":")[1]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    message = _fails("decrypt", "--key", str(private), f"oci:{tmp_path / 'enc'}", f"oci:{tmp_path / 'out'}")
    assert f"blob {digest} does not match its digest" in message
    assert not (tmp_path / "out").exists()


def test_unknown_recipient_scheme_lists_the_known_ones(plain: Path, tmp_path: Path) -> None:
    message = _fails("encrypt", "--recipient", "age:someone", f"oci:{plain}:v1", f"oci:{tmp_path / 'out'}")
    assert "unknown recipient scheme 'age'" in message and "jwe, pkcs7, pgp, pkcs11, provider" in message


def test_wrong_key_fails_with_the_decoders_message(plain: Path, tmp_path: Path) -> None:
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    other, _, _ = write_key_pair(tmp_path, "other", "p256")
    ocicrypt("encrypt", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci:{tmp_path / 'enc'}")
    message = _fails("decrypt", "--key", str(other), f"oci:{tmp_path / 'enc'}", f"oci:{tmp_path / 'out'}")
    assert "no suitable key unwrapper found or none of the private keys could be used for decryption" in message
    assert "BEGIN" not in message
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)


def test_password_of_an_encrypted_key_never_appears_in_messages(plain: Path, tmp_path: Path) -> None:
    private = tmp_path / "locked.pem"
    private.write_bytes(private_pem(new_key("p256"), password=b"the-right-one"))
    message = _fails("decrypt", "--key", f"{private}:pass=s3cret-pw", f"oci:{plain}", f"oci:{tmp_path / 'out'}")
    assert "Wrong password" in message
    assert "s3cret-pw" not in message and "the-right-one" not in message


def test_existing_destination_is_left_untouched(plain: Path, tmp_path: Path) -> None:
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine").write_text("keep")
    message = _fails("encrypt", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci:{tmp_path / 'out'}")
    assert "already exists" in message
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine"]
    (tmp_path / "out.tar").write_text("keep")
    _fails("encrypt", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci-archive:{tmp_path / 'out.tar'}")
    assert (tmp_path / "out.tar").read_text() == "keep"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 1 MiB tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize("transport", ["oci", "oci-archive"])
def test_full_disk_leaves_no_destination_and_no_temporary_files(
    transport: str, small_disk: Path, tmp_path: Path
) -> None:
    make_layout(tmp_path / "big", [{"blob": os.urandom(3 << 20)}], compress=False)
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    message = _fails(
        "encrypt", "--recipient", f"jwe:{public}", f"oci:{tmp_path / 'big'}:v1", f"{transport}:{small_disk / 'out'}"
    )
    assert "No space left on device" in message
    assert list(small_disk.iterdir()) == []


def test_keyboard_interrupt_midway_leaves_no_destination(tmp_path: Path) -> None:
    make_layout(tmp_path / "big", [{"blob": os.urandom(48 << 20)}], compress=False)
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    exe = Path(sys.executable).parent / "ocicrypt"
    process = subprocess.Popen(
        [str(exe), "encrypt", "--recipient", f"jwe:{public}", f"oci:{tmp_path / 'big'}:v1", f"oci:{tmp_path / 'out'}"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not any(tmp_path.glob(".out.ocicrypt-*/layout/blobs/sha256/.blob-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0, "the interrupt came too late to test anything"
    assert stderr == "ocicrypt: interrupted\n"
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)


def test_layout_that_is_not_json_is_named(plain: Path, tmp_path: Path) -> None:
    (plain / "index.json").write_text("{not json")
    message = _fails("decrypt", f"oci:{plain}", f"oci:{tmp_path / 'out'}")
    assert "index.json is not valid JSON" in message


def test_adding_recipients_to_an_encrypted_image_without_a_key_says_what_is_needed(plain: Path, tmp_path: Path) -> None:
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    _, other, _ = write_key_pair(tmp_path, "other", "p256")
    ocicrypt("encrypt", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci:{tmp_path / 'enc'}")
    message = _fails("encrypt", "--recipient", f"jwe:{other}", f"oci:{tmp_path / 'enc'}", f"oci:{tmp_path / 'out'}")
    assert "is already encrypted: adding recipients needs a --key that unwraps it" in message
    assert not (tmp_path / "out").exists()


# Requests that would change nothing: refused before anything is written, or (decrypt) noted.


def test_a_layer_the_image_lacks_is_refused_for_every_command(plain: Path, tmp_path: Path) -> None:
    private, public, _ = write_key_pair(tmp_path, "k", "p256")
    ocicrypt("encrypt", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci:{tmp_path / 'enc'}:v1")
    out = f"oci:{tmp_path / 'out'}"
    expected = "ocicrypt: --layer 5: the linux/amd64 image has 2 layers (valid: 0..1 or -2..-1); nothing written\n"
    commands = [
        ["encrypt", "--layer", "5", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", out],
        ["encrypt", "--layer", "0", "--layer", "5", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", out],
        ["decrypt", "--layer", "5", "--key", str(private), f"oci:{tmp_path / 'enc'}:v1", out],
        ["recipients", "add", "--layer", "5", "--key", str(private), "--recipient", f"jwe:{public}",
         f"oci:{tmp_path / 'enc'}:v1", out],
        ["recipients", "rotate", "--layer", "5", "--key", str(private), "--recipient", f"jwe:{public}",
         f"oci:{tmp_path / 'enc'}:v1", out],
    ]  # fmt: skip
    for command in commands:
        assert _fails(*command) == expected, command
        assert not (tmp_path / "out").exists()
    assert _fails("encrypt", "--layer", "-3", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", out).startswith(
        "ocicrypt: --layer -3: the linux/amd64 image has 2 layers"
    )
    _no_leftovers(tmp_path)


def test_recipients_on_an_image_with_no_encrypted_layer_selected_are_refused(plain: Path, tmp_path: Path) -> None:
    private, public, _ = write_key_pair(tmp_path, "k", "p256")
    _, other, _ = write_key_pair(tmp_path, "other", "p256")
    out = f"oci:{tmp_path / 'out'}"
    for action, what in (("add", "recipients are added only to"), ("rotate", "layer keys are rotated only in")):
        key_args = ["--key", str(private), "--recipient", f"jwe:{other}"]
        message = _fails("recipients", action, *key_args, f"oci:{plain}:v1", out)
        assert message == (
            f"ocicrypt: oci:{plain}:v1: no selected layer is encrypted: {what} encrypted layers "
            "(to encrypt: ocicrypt encrypt); nothing written\n"
        )
        assert not (tmp_path / "out").exists()
    # Only the top layer encrypted, only the base layer selected: nothing to do either.
    ocicrypt(
        "encrypt", "--layer", "-1", "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci:{tmp_path / 'top'}:v1"
    )
    key_args = ["--key", str(private), "--recipient", f"jwe:{other}"]
    message = _fails("recipients", "add", "--layer", "0", *key_args, f"oci:{tmp_path / 'top'}:v1", out)
    assert "no selected layer is encrypted" in message
    ocicrypt("recipients", "add", "--layer", "1", *key_args, f"oci:{tmp_path / 'top'}:v1", out)
    assert (tmp_path / "out" / "index.json").is_file()
    # Decrypting an image with one encrypted layer decrypts it without a note.
    decrypted = ocicrypt("decrypt", "--key", str(private), f"oci:{tmp_path / 'top'}:v1", f"oci:{tmp_path / 'dec'}:v1")
    assert decrypted.stderr == "" and layer_digests(tmp_path / "dec") == layer_digests(plain)
    _no_leftovers(tmp_path)


def test_an_image_without_layers_is_not_encrypted_silently(tmp_path: Path) -> None:
    make_layout(tmp_path / "empty", [])
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    message = _fails("encrypt", "--recipient", f"jwe:{public}", f"oci:{tmp_path / 'empty'}:v1", f"oci:{tmp_path / 'o'}")
    assert message == f"ocicrypt: oci:{tmp_path / 'empty'}:v1: the image has no layers; nothing written\n"
    assert not (tmp_path / "o").exists()


def test_decrypting_a_plain_image_says_so_and_writes_the_unchanged_copy(plain: Path, tmp_path: Path) -> None:
    result = ocicrypt("decrypt", f"oci:{plain}:v1", f"oci:{tmp_path / 'out'}:v1")
    assert result.stdout == ""
    assert result.stderr == (
        f"ocicrypt: note: oci:{plain}:v1: no selected layer is encrypted; "
        f"oci:{tmp_path / 'out'}:v1 is an unchanged copy\n"
    )
    assert image_blobs(tmp_path / "out") == image_blobs(plain)
    skopeo("inspect", f"oci:{tmp_path / 'out'}:v1")


def test_a_gpg_homedir_without_pgp_recipients_is_refused(plain: Path, tmp_path: Path) -> None:
    _, public, _ = write_key_pair(tmp_path, "k", "p256")
    args = ["--gpg-homedir", str(tmp_path), "--recipient", f"jwe:{public}", f"oci:{plain}:v1", f"oci:{tmp_path / 'o'}"]
    message = _fails("encrypt", *args)
    assert message == f"ocicrypt: --gpg-homedir {tmp_path} is used only to find pgp: recipients, and none was given\n"
    assert not (tmp_path / "o").exists()
