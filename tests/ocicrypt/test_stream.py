"""The streaming decryptor: identical output whatever the read sizes, nothing unverified at the end."""

from __future__ import annotations

import os
import random
import threading

import pytest

from ctd_decoder.ocicrypt.blockcipher import LayerDecryptor, PrivateOptions, PublicOptions, get_cipher
from ctd_decoder.ocicrypt.errors import IntegrityError, LayerError
from ctd_decoder.ocicrypt.stream import CHUNK_SIZE, MIN_HOLD_BACK, decrypt_stream

CIPHER = get_cipher("AES_256_CTR_HMAC_SHA256")


def _encrypt(plaintext: bytes) -> tuple[bytes, PublicOptions, PrivateOptions]:
    private = CIPHER.new_private_options("")
    encryptor = CIPHER.encryptor(private)
    return encryptor.update(plaintext), encryptor.finalize(), private


def _pump(
    decryptor: LayerDecryptor, ciphertext: bytes, rng: random.Random, chunk_size: int, size_hint: int | None = None
) -> tuple[bytes, BaseException | None]:
    """Feed ``ciphertext`` through a pipe in random-sized writes; collect the output from another pipe."""
    source_r, source_w = os.pipe()
    target_r, target_w = os.pipe()

    def feed() -> None:
        view = memoryview(ciphertext)
        while view:
            size = rng.choice([1, 7, 4096, 10239, 65536, 200_000])
            os.write(source_w, view[:size])
            view = view[size:]
        os.close(source_w)

    collected: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(target_r, 1 << 16):
            collected.append(chunk)

    threads = [threading.Thread(target=feed), threading.Thread(target=drain)]
    for thread in threads:
        thread.start()
    error: BaseException | None = None
    try:
        decrypt_stream(decryptor, source_r, target_w, chunk_size, size_hint)
    except IntegrityError as err:
        error = err
    os.close(target_w)
    os.close(source_r)
    for thread in threads:
        thread.join()
    os.close(target_r)
    return b"".join(collected), error


def _run(
    plaintext: bytes,
    tamper: int | None = None,
    seed: int = 0,
    chunk_size: int = CHUNK_SIZE,
    size_hint: int | None = None,
) -> tuple[bytes, BaseException | None]:
    ciphertext, public, private = _encrypt(plaintext)
    if tamper is not None:
        mutable = bytearray(ciphertext)
        mutable[tamper] ^= 0x01
        ciphertext = bytes(mutable)
    return _pump(CIPHER.decryptor(public, private), ciphertext, random.Random(seed), chunk_size, size_hint)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk_size", [10240, 10241, 65536, 1 << 20, CHUNK_SIZE])
def test_random_read_sizes_give_identical_output(seed: int, chunk_size: int) -> None:
    plaintext = random.Random(seed).randbytes(random.Random(seed + 100).randint(0, 3_000_000))
    output, error = _run(plaintext, seed=seed, chunk_size=chunk_size)
    assert error is None
    assert output == plaintext


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, MIN_HOLD_BACK, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1])
def test_boundary_sizes_round_trip(size: int) -> None:
    plaintext = os.urandom(size)
    output, error = _run(plaintext)
    assert error is None
    assert output == plaintext


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_tampered_ciphertext_is_refused_and_tail_withheld(where: str) -> None:
    plaintext = os.urandom(3 * (1 << 20) + 12345)
    position = {"first": 0, "middle": len(plaintext) // 2, "last": len(plaintext) - 1}[where]
    output, error = _run(plaintext, tamper=position, chunk_size=65536)
    assert isinstance(error, IntegrityError)
    assert "could not properly decrypt byte stream" in str(error)
    assert len(output) <= len(plaintext) - MIN_HOLD_BACK
    # Whatever was released is the plaintext prefix with at most the flipped bit: CTR is malleable,
    # which is exactly why the tail is withheld until the tag verifies.
    intact = min(len(output), position)
    assert output[:intact] == plaintext[:intact]


def test_small_tampered_layer_releases_nothing() -> None:
    plaintext = os.urandom(MIN_HOLD_BACK * 3)
    output, error = _run(plaintext, tamper=5)
    assert isinstance(error, IntegrityError)
    assert output == b""


@pytest.mark.parametrize("hint", [0, 1, 10239, 500_000, 1_000_000, 10**12, -5])
def test_a_lying_size_hint_changes_nothing_but_speed(hint: int) -> None:
    plaintext = os.urandom(1_000_000)
    output, error = _run(plaintext, size_hint=hint)
    assert error is None
    assert output == plaintext


@pytest.mark.parametrize("hint", [0, 100, 1_000_000])
def test_tampering_is_caught_whatever_the_size_hint(hint: int) -> None:
    plaintext = os.urandom(1_000_000)
    output, error = _run(plaintext, tamper=len(plaintext) - 1, size_hint=hint)
    assert isinstance(error, IntegrityError)
    assert len(output) <= len(plaintext) - MIN_HOLD_BACK


@pytest.mark.parametrize("short", [1, 12345, CHUNK_SIZE - 1])
def test_default_hold_back_is_the_last_full_chunk_and_the_short_one(short: int) -> None:
    """The README's figures: 2 MiB chunks, and 2 to 4 MiB of plaintext withheld until the tag verifies."""
    assert CHUNK_SIZE == 2 << 20
    plaintext = os.urandom(2 * CHUNK_SIZE + short)
    output, error = _run(plaintext, tamper=len(plaintext) - 1)
    assert isinstance(error, IntegrityError)
    withheld = len(plaintext) - len(output)
    assert withheld == CHUNK_SIZE + short
    assert 2 << 20 < withheld < 4 << 20


def test_public_nonce_equal_to_the_wrapped_one_is_accepted() -> None:
    plaintext = os.urandom(5000)
    ciphertext, public, private = _encrypt(plaintext)
    public.cipher_options["nonce"] = private.cipher_options["nonce"]
    output, error = _pump(CIPHER.decryptor(public, private), ciphertext, random.Random(1), CHUNK_SIZE)
    assert (output, error) == (plaintext, None)


def test_altered_public_nonce_is_refused_before_decrypting() -> None:
    _, public, private = _encrypt(os.urandom(5000))
    public.cipher_options["nonce"] = bytes(16)
    with pytest.raises(LayerError, match="nonce differs from the one wrapped with the key"):
        CIPHER.decryptor(public, private)
