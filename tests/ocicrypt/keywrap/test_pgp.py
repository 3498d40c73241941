"""OpenPGP unwrap and wrap through real gpg: Go's messages, passphrases, clean-up, and attacks."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.decoder import modules_imported, run_decoder, start_decoder
from support.fixtures import fixtures_dir
from support.gpgkeys import GpgHome, require_gpg
from support.keygen import new_key, private_pem
from support.layers import jwe_layer
from support.pki import certificate, certificate_pem
from support.tempdirs import short_tempdir

from ctd_decoder.decoder.payload import Payload, encode_payload, parse_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.errors import MissingBackendError, UnwrapError, WrapError
from ctd_decoder.ocicrypt.keywrap.pgp import scratch
from ctd_decoder.ocicrypt.keywrap.pgp import wrapper as pgp
from ctd_decoder.ocicrypt.keywrap.pgp.packets import PacketError
from ctd_decoder.ocicrypt.keywrap.pgp.wrapper import WRAPPER
from ctd_decoder.ocicrypt.layer import encrypt_layer

ANNOTATION = "org.opencontainers.image.enc.keys.pgp"
PASSPHRASE = b"secret123"  # the Go fixture pgp-with-passphrase
SECRET = b'{"symkey":"c2VjcmV0","digest":"sha256:00","cipheroptions":{}}'
GZIP_ENCRYPTED = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"


def _go_case(name: str) -> tuple[bytes, bytes]:
    """Return (the Go-written OpenPGP message, the secret key ring that opens it)."""
    payload = parse_payload((fixtures_dir() / name / "payload.bin").read_bytes())
    ring = payload.decrypt_config.get(params.GPG_PRIVATEKEYS)[0]
    assert ring is not None
    return base64.b64decode(payload.descriptor.annotations[ANNOTATION]), ring


def _dc(rings: list[bytes], passwords: list[bytes | None] | None = None) -> DecryptConfig:
    parameters: dict[str, list[bytes | None]] = {params.GPG_PRIVATEKEYS: list(rings)}
    if passwords is not None:
        parameters[params.GPG_PRIVATEKEYS_PASSWORDS] = list(passwords)
    return DecryptConfig(parameters)


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _armor(ring: bytes) -> bytes:
    """ASCII-armor a binary secret key ring (RFC 4880 section 6), written independently of gpg."""
    body = base64.b64encode(ring).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    checksum = base64.b64encode(_crc24(ring).to_bytes(3, "big")).decode()
    text = ["-----BEGIN PGP PRIVATE KEY BLOCK-----", "", *lines, "=" + checksum, "-----END PGP PRIVATE KEY BLOCK-----"]
    return ("\n".join(text) + "\n").encode()


@pytest.fixture(scope="module")
def protected() -> tuple[bytes, bytes]:
    return _go_case("pgp-with-passphrase")


@pytest.fixture(scope="module")
def unprotected() -> tuple[bytes, bytes]:
    return _go_case("pgp-no-passphrase")


@pytest.fixture(scope="module")
def home() -> Iterator[GpgHome]:
    """A GnuPG home with two fresh keys: Alice (name + e-mail) and Bob."""
    gpg_home = GpgHome()
    try:
        gpg_home.generate("Alice Test", "alice@example.com")
        gpg_home.generate("Bob", "bob@example.com")
        yield gpg_home
    finally:
        gpg_home.close()


@pytest.fixture
def gnupghome_parent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the wrapper create its homes in a fresh short directory of this test's own."""
    parent = short_tempdir("pgpt-")
    monkeypatch.setattr(scratch, "DEFAULT_PARENT", str(parent))
    yield parent
    assert not list(parent.iterdir()), "a temporary GNUPGHOME was left behind"
    _wait_until_no_process_mentions(str(parent))
    parent.rmdir()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _wait_until_no_process_mentions(text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (left := _processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes still running for {text}: {left}"


# --- Go's messages ----------------------------------------------------------------------------


def test_go_message_unwraps_with_a_binary_ring(unprotected: tuple[bytes, bytes], gnupghome_parent: Path) -> None:
    message, ring = unprotected
    assert b'"symkey"' in WRAPPER.unwrap_key(_dc([ring], [None]), message)


def test_go_message_unwraps_with_an_armored_ring(unprotected: tuple[bytes, bytes], gnupghome_parent: Path) -> None:
    message, ring = unprotected
    assert b'"symkey"' in WRAPPER.unwrap_key(_dc([_armor(ring)]), message)


def test_passphrase_protected_ring_unwraps_with_its_passphrase(
    protected: tuple[bytes, bytes], gnupghome_parent: Path
) -> None:
    message, ring = protected
    assert b'"symkey"' in WRAPPER.unwrap_key(_dc([ring], [PASSPHRASE]), message)


def test_first_ring_that_decrypts_wins_and_a_short_password_list_is_fine(
    protected: tuple[bytes, bytes], unprotected: tuple[bytes, bytes], gnupghome_parent: Path
) -> None:
    message, ring = unprotected
    # Ring #1 is not a recipient (and has the only password); ring #2 has no password entry at all.
    assert b'"symkey"' in WRAPPER.unwrap_key(_dc([protected[1], ring], [PASSPHRASE]), message)


def test_wrong_passphrase_is_reported_and_later_rings_are_still_tried(
    protected: tuple[bytes, bytes], gnupghome_parent: Path
) -> None:
    message, ring = protected
    with pytest.raises(UnwrapError) as refused:
        WRAPPER.unwrap_key(_dc([ring], [b"not-the-passphrase"]), message)
    text = str(refused.value)
    assert "wrong passphrase" in text and "not-the-passphrase" not in text
    assert "D3DF88D72F2495B864EC021C853CFDFE74815014" in text, "the failing key is named by fingerprint"
    assert b'"symkey"' in WRAPPER.unwrap_key(_dc([ring, ring], [b"not-the-passphrase", PASSPHRASE]), message)


@pytest.mark.parametrize("password", [None, b""])
def test_missing_passphrase_is_reported(
    protected: tuple[bytes, bytes], gnupghome_parent: Path, password: bytes | None
) -> None:
    message, ring = protected
    with pytest.raises(UnwrapError, match="passphrase-protected and no passphrase was given"):
        WRAPPER.unwrap_key(_dc([ring], [password]), message)


def test_ring_that_is_not_a_recipient_is_named_with_the_recipients(
    protected: tuple[bytes, bytes], unprotected: tuple[bytes, bytes], gnupghome_parent: Path
) -> None:
    with pytest.raises(UnwrapError) as refused:
        WRAPPER.unwrap_key(_dc([unprotected[1]]), protected[0])
    text = str(refused.value)
    assert text.startswith("PGP: No suitable key found to unwrap key; recipients: 0xf387369b9bea9e68")
    assert "key ring #1: the message names none of its key IDs (gpg not run)" in text


def test_public_or_garbage_rings_are_reported_without_starting_gpg(
    home: GpgHome, protected: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgp, "GpgHome", _forbidden)
    with pytest.raises(UnwrapError) as refused:
        WRAPPER.unwrap_key(_dc([home.export_public(), b"README", b""]), protected[0])
    text = str(refused.value)
    assert (
        "#1 is a public key ring" in text and "#2 is not an OpenPGP secret key ring" in text and "#3 is empty" in text
    )


def test_passphrase_with_a_line_break_is_refused_without_starting_gpg(
    protected: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgp, "GpgHome", _forbidden)
    with pytest.raises(UnwrapError, match="line break"):
        WRAPPER.unwrap_key(_dc([protected[1]], [b"secret123\n--batch"]), protected[0])


def test_missing_key_parameter_has_gos_message(protected: tuple[bytes, bytes]) -> None:
    with pytest.raises(UnwrapError, match=r"^GPG: Missing private key parameter$"):
        WRAPPER.unwrap_key(_dc([]), protected[0])


# --- attacks on the message -------------------------------------------------------------------


def _forbidden(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("gpg must not be started")


@pytest.mark.parametrize(
    "garbage", [b"", b"hello", b"\x30\x82\x01\x00", b"\xc1\xff\xff\xff\xff\xff", b"\x8c\x0d\x04\x09\x03\x02"]
)
def test_not_an_openpgp_message_is_refused_without_starting_gpg(
    protected: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch, garbage: bytes
) -> None:
    monkeypatch.setattr(pgp, "GpgHome", _forbidden)
    with pytest.raises(UnwrapError, match="not an encrypted OpenPGP message"):
        WRAPPER.unwrap_key(_dc([protected[1]], [PASSPHRASE]), garbage)


@pytest.mark.parametrize("where", ["session key", "encrypted data", "last byte"])
def test_corrupted_openpgp_message_is_refused(
    unprotected: tuple[bytes, bytes], gnupghome_parent: Path, where: str
) -> None:
    message, ring = unprotected
    position = {"session key": 100, "encrypted data": 300, "last byte": len(message) - 1}[where]
    corrupted = bytearray(message)
    corrupted[position] ^= 0x01
    with pytest.raises(UnwrapError, match="PGP: No suitable key found"):
        WRAPPER.unwrap_key(_dc([ring]), bytes(corrupted))


@pytest.mark.parametrize("length", [1, 3, 200, 272, 400, 526])
def test_truncated_openpgp_message_is_refused(
    unprotected: tuple[bytes, bytes], gnupghome_parent: Path, length: int
) -> None:
    message, ring = unprotected
    with pytest.raises(UnwrapError):
        WRAPPER.unwrap_key(_dc([ring]), message[:length])


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=1024))
def test_packet_walker_raises_only_its_own_error_on_random_bytes(data: bytes) -> None:
    try:
        recipients = pgp.message_recipients(data)
    except PacketError:
        return
    assert recipients and all(0 <= key_id < 1 << 64 for key_id in recipients)


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(min_value=0, max_value=527), position=st.integers(min_value=0), mask=st.integers(1, 255))
def test_packet_walker_on_mutated_go_messages(
    unprotected: tuple[bytes, bytes], cut: int, position: int, mask: int
) -> None:
    mutated = bytearray(unprotected[0][:cut])
    if mutated:
        mutated[position % len(mutated)] ^= mask
    with contextlib.suppress(PacketError):
        pgp.message_recipients(bytes(mutated))


# --- backends ---------------------------------------------------------------------------------


def test_missing_gpg_program_is_a_missing_backend_error(
    unprotected: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingBackendError, match="gpg"):
        WRAPPER.unwrap_key(_dc([unprotected[1]]), unprotected[0])


def test_missing_python_gnupg_is_a_missing_backend_error(
    unprotected: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    pgp.gpg_class.cache_clear()
    monkeypatch.setitem(sys.modules, "gnupg", None)
    try:
        with pytest.raises(MissingBackendError, match="python-gnupg"):
            WRAPPER.unwrap_key(_dc([unprotected[1]]), unprotected[0])
    finally:
        pgp.gpg_class.cache_clear()


# --- clean-up ---------------------------------------------------------------------------------


def test_no_gnupghome_or_agent_is_left_after_success_or_failure(
    protected: tuple[bytes, bytes], unprotected: tuple[bytes, bytes], gnupghome_parent: Path
) -> None:
    message, ring = protected
    assert WRAPPER.unwrap_key(_dc([ring], [PASSPHRASE]), message)
    for dc in (_dc([ring], [b"wrong"]), _dc([unprotected[1]]), _dc([b"\x95\x01\x00"])):
        with pytest.raises(UnwrapError):
            WRAPPER.unwrap_key(dc, message)
    # The fixture checks the parent directory is empty and no gpg-agent still runs for it.


def test_no_gnupghome_or_agent_is_left_when_gpg_blows_up(
    protected: tuple[bytes, bytes], gnupghome_parent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: pgp.GpgHome, message: bytes, password: bytes | None) -> None:
        assert self.path is not None and self.path.parent == gnupghome_parent
        assert oct(self.path.stat().st_mode & 0o777) == "0o700"
        raise RuntimeError("boom")

    monkeypatch.setattr(pgp.GpgHome, "decrypt", explode)
    with pytest.raises(RuntimeError, match="boom"):
        WRAPPER.unwrap_key(_dc([protected[1]], [PASSPHRASE]), protected[0])


@pytest.mark.parametrize("ending", ["exit", "decoder stop"])
def test_home_whose_exit_never_ran_is_removed_with_its_agent_when_the_process_ends(ending: str) -> None:
    # What a stop signal does when it lands between GpgHome.__enter__ and the registration of its
    # __exit__ (ExitStack.enter_context): the with block's clean-up never runs.
    require_gpg()
    stop = "from ctd_decoder.ocicrypt.keywrap.pgp import scratch\nscratch.remove_live_dirs()\nos._exit(143)\n"
    code = (
        "import os, sys\n"
        "from ctd_decoder.ocicrypt.keywrap.pgp.wrapper import GpgHome\n"
        "home = GpgHome().__enter__()\n"
        "print(home.path, flush=True)\n" + (stop if ending == "decoder stop" else "sys.exit(143)\n")
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 143, result.stderr
    path = result.stdout.strip()
    assert path.startswith(os.path.join(scratch.DEFAULT_PARENT, scratch.GPG_HOME_PREFIX))
    assert not Path(path).exists(), "the home was left behind"
    _wait_until_no_process_mentions(path)


# --- recording gpg: argv and environment of every child ---------------------------------------


def _recording_path(tmp_path: Path, stall_on_decrypt: bool = False) -> tuple[dict[str, str], Path]:
    """Put recording wrappers for gpg and gpgconf first on PATH; return the env and the log dir."""
    gpg, gpgconf = require_gpg()
    bin_dir, log_dir = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log_dir.mkdir()
    agent = shutil.which("gpg-agent") or "gpg-agent"
    for name, real in (("gpg", gpg), ("gpgconf", gpgconf), ("gpg-agent", agent)):
        script = bin_dir / name
        script.write_text(
            f"#!{sys.executable}\n"
            "import json, os, sys, time\n"
            f"log = {str(log_dir)!r}\n"
            "record = os.path.join(log, f'{os.getpid()}.json')\n"
            "with open(record + '.part', 'w') as f:\n"
            f"    json.dump({{'argv': sys.argv, 'env': dict(os.environ), 'program': {name!r}}}, f)\n"
            "os.rename(record + '.part', record)\n"
            f"if {stall_on_decrypt!r} and '--decrypt' in sys.argv:\n"
            "    time.sleep(60)\n"
            f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n"
        )
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, log_dir


def _recorded(log_dir: Path) -> list[dict[str, object]]:
    return [json.loads(path.read_text()) for path in sorted(log_dir.glob("*.json"))]


def _pgp_fixture_payload(name: str, dc: DecryptConfig | None = None) -> tuple[Path, bytes]:
    directory = fixtures_dir() / name
    payload = parse_payload((directory / "payload.bin").read_bytes())
    return directory / "layer.enc", encode_payload(Payload(dc or payload.decrypt_config, payload.descriptor))


def test_no_passphrase_in_any_childs_argv_or_environment(tmp_path: Path) -> None:
    env, log_dir = _recording_path(tmp_path)
    layer, payload = _pgp_fixture_payload("pgp-with-passphrase")
    result = run_decoder(layer, payload, env=env)
    assert result.returncode == 0, result.stderr
    calls = _recorded(log_dir)
    assert any("--decrypt" in call["argv"] for call in calls)
    assert any(call["program"] == "gpg-agent" and "--supervised" in call["argv"] for call in calls)
    for call in calls:
        recorded = json.dumps(call)
        assert PASSPHRASE.decode() not in recorded, f"passphrase leaked into {call['argv']}"
        assert "--passphrase-fd" not in call["argv"] or "0" in call["argv"]
    homes = {call["argv"][call["argv"].index("--homedir") + 1] for call in calls}
    assert len(homes) == 1
    (gnupghome,) = homes
    assert (
        str(gnupghome).startswith(os.path.join(scratch.DEFAULT_PARENT, scratch.GPG_HOME_PREFIX))
        and len(str(gnupghome)) < 40
    )
    assert not Path(str(gnupghome)).exists()
    _wait_until_no_process_mentions(str(gnupghome))


def test_sigterm_while_gpg_runs_still_removes_the_home_and_the_agent(tmp_path: Path) -> None:
    env, log_dir = _recording_path(tmp_path, stall_on_decrypt=True)
    layer, payload = _pgp_fixture_payload("pgp-no-passphrase")
    with open(layer, "rb") as stdin:
        process = start_decoder(stdin, payload, env=env)
    deadline = time.monotonic() + 30
    while not any("--decrypt" in call["argv"] for call in _recorded(log_dir)):
        assert time.monotonic() < deadline and process.poll() is None, "gpg --decrypt never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stdout == b"" and b"Traceback" not in stderr
    homes = {call["argv"][call["argv"].index("--homedir") + 1] for call in _recorded(log_dir)}
    for gnupghome in homes:
        assert not Path(str(gnupghome)).exists()
        _wait_until_no_process_mentions(str(gnupghome))


# --- only when needed: no gpg process, no gnupg import -----------------------------------------


def _gpg_keys(unprotected: tuple[bytes, bytes]) -> dict[str, list[bytes | None]]:
    return {params.GPG_PRIVATEKEYS: [unprotected[1]], params.GPG_PRIVATEKEYS_PASSWORDS: [None]}


def test_pkcs7_layer_starts_no_gpg_and_imports_no_gnupg(unprotected: tuple[bytes, bytes], tmp_path: Path) -> None:
    env, log_dir = _recording_path(tmp_path)
    key = new_key("rsa2048")
    cert = certificate_pem(certificate(key, "only-pkcs7"))
    plaintext = b"pkcs7 only layer" * 100
    buffer = io.BytesIO()
    annotations = encrypt_layer(EncryptConfig({params.X509S: [cert]}), io.BytesIO(plaintext), buffer)
    assert set(annotations) == {"org.opencontainers.image.enc.keys.pkcs7", "org.opencontainers.image.enc.pubopts"}
    blob = buffer.getvalue()
    descriptor = Descriptor(GZIP_ENCRYPTED, "sha256:" + "0" * 64, len(blob), annotations)
    dc = DecryptConfig(
        {
            params.PRIVKEYS: [private_pem(key)],
            params.PRIVKEYS_PASSWORDS: [None],
            params.X509S: [cert],
            **_gpg_keys(unprotected),
        }
    )
    result, modules = modules_imported(tmp_path / "modules.json", blob, encode_payload(Payload(dc, descriptor)), env)
    assert result.returncode == 0, result.stderr
    assert "cryptography" in modules
    assert "gnupg" not in modules
    assert _recorded(log_dir) == [], "a gpg process was started for a PKCS#7 layer"


def test_jwe_layer_with_gpg_keys_present_imports_no_gnupg(unprotected: tuple[bytes, bytes], tmp_path: Path) -> None:
    env, log_dir = _recording_path(tmp_path)
    layer = jwe_layer(b"jwe layer" * 100)
    dc = DecryptConfig({params.PRIVKEYS: [layer.private_key_pem], params.PRIVKEYS_PASSWORDS: [None]})
    dc.parameters.update(_gpg_keys(unprotected))
    result, modules = modules_imported(tmp_path / "modules.json", layer.blob, layer.payload(dc), env)
    assert result.returncode == 0, result.stderr
    assert "cryptography" in modules
    assert "gnupg" not in modules
    assert _recorded(log_dir) == []


def test_armored_ring_with_password_file_in_the_keys_dir_decrypts(
    protected: tuple[bytes, bytes], tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "ring.asc").write_bytes(_armor(protected[1]))
    (keys_dir / "ring.asc.password").write_bytes(PASSPHRASE + b"\n")
    layer, payload = _pgp_fixture_payload("pgp-with-passphrase", DecryptConfig())
    result = run_decoder(layer, payload, ["--decryption-keys-path", str(keys_dir)])
    assert result.returncode == 0, result.stderr
    expected = (fixtures_dir() / "pgp-with-passphrase" / "expected.sha256").read_text().strip()
    assert hashlib.sha256(result.stdout).hexdigest() == expected


# --- wrapping ---------------------------------------------------------------------------------


def _ec(recipients: list[str], ring: bytes | None) -> EncryptConfig:
    parameters: dict[str, list[bytes | None]] = {params.GPG_RECIPIENTS: [r.encode() for r in recipients]}
    if ring is not None:
        parameters[params.GPG_PUBKEYRINGFILE] = [ring]
    return EncryptConfig(parameters)


def test_our_message_decrypts_with_gpg_itself_and_is_binary_and_uncompressed(home: GpgHome) -> None:
    message = WRAPPER.wrap_keys(_ec(["alice@example.com", "Bob"], home.export_public()), SECRET)
    assert message is not None
    assert message[0] & 0x80 and not message.startswith(b"-----"), "binary, not armored"
    assert home.run("--decrypt", input=message) == SECRET
    packets = subprocess.run(
        [require_gpg()[0], "--homedir", str(home.path), "--batch", "--list-packets"],
        input=message,
        capture_output=True,
        check=False,
    ).stdout.decode()
    assert packets.count(":pubkey enc packet:") == 2
    assert "compressed packet" not in packets and ":literal data packet:" in packets
    assert "mdc_method: 2" in packets


def test_our_message_unwraps_with_our_decoder(home: GpgHome, gnupghome_parent: Path) -> None:
    message = WRAPPER.wrap_keys(_ec(["alice@example.com"], home.export_public()), SECRET)
    assert message is not None
    ring = home.export_secret("alice@example.com")
    assert WRAPPER.unwrap_key(_dc([ring]), message) == SECRET


@pytest.mark.parametrize("who", ["Alice Test", "alice@example.com", "Alice Test <alice@example.com>"])
def test_recipients_match_like_go_by_name_or_email(home: GpgHome, who: str) -> None:
    message = WRAPPER.wrap_keys(_ec([who], home.export_public()), SECRET)
    assert message is not None and home.run("--decrypt", input=message) == SECRET


def test_recipients_by_fingerprint_or_key_id(home: GpgHome) -> None:
    fingerprint = home.fingerprint("bob@example.com")
    for who in (fingerprint, "0x" + fingerprint[-16:].lower()):
        assert pgp.message_recipients(WRAPPER.wrap_keys(_ec([who], home.export_public()), SECRET) or b"")


@pytest.mark.parametrize("who", ["lice@example.com", "Alice", "example.com", "carol@example.com"])
def test_recipient_substrings_do_not_match(home: GpgHome, who: str) -> None:
    with pytest.raises(WrapError, match="No key found for the following recipients"):
        WRAPPER.wrap_keys(_ec([who], home.export_public()), SECRET)


def test_without_a_ring_the_users_gnupghome_is_used(home: GpgHome, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GNUPGHOME", str(home.path))
    message = WRAPPER.wrap_keys(_ec(["bob@example.com"], None), SECRET)
    assert message is not None and home.run("--decrypt", input=message) == SECRET


def test_no_recipients_wraps_nothing_and_starts_no_gpg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgp, "GpgHome", _forbidden)
    assert WRAPPER.wrap_keys(EncryptConfig({}), SECRET) is None
