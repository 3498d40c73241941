"""Hostile layers and keys, made at run time: one builder per attack class.

Shared by tests/decoder/test_attacks_bounded.py (small sizes that still cross every limit) and
bench/adversarial.py (the sizes the issue measured). Each builder returns :class:`Case` objects: the
stdin blob, the fd-3 payload, decoder arguments and environment, and what the decoder must do.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctd_decoder.decoder.payload import Payload, encode_payload
from ctd_decoder.ocicrypt import config as params
from ctd_decoder.ocicrypt.config import DecryptConfig, EncryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.keywrap import ANNOTATION_PREFIX, PUBOPTS_ANNOTATION
from ctd_decoder.ocicrypt.keywrap.jwe import WRAPPER as JWE
from ctd_decoder.ocicrypt.keywrap.pkcs7 import der

from .gpgkeys import GpgHome
from .keygen import new_key, private_pem, public_pem
from .layers import EncryptedLayer, jwe_layer
from .pki import certificate, certificate_der, certificate_pem
from .secrets import kubernetes_secret_volume

JWE_ANNOTATION = ANNOTATION_PREFIX + "jwe"
PGP_ANNOTATION = ANNOTATION_PREFIX + "pgp"
PKCS7_ANNOTATION = ANNOTATION_PREFIX + "pkcs7"
PKCS11_ANNOTATION = ANNOTATION_PREFIX + "pkcs11"
PLAINTEXT = b"adversarial corpus layer\n" * 1000


@dataclass
class Case:
    """One hostile run of the decoder and what it must do."""

    attack: str
    name: str
    blob: bytes
    payload: bytes
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    decrypts: bool = False  # True: the genuine key must still win, exit 0 with the plaintext


def b64(data: bytes) -> str:
    """Standard base64 text, as annotations carry it."""
    return base64.b64encode(data).decode("ascii")


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWE carries it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Corpus:
    """Keys and a genuine JWE layer shared by the builders, made once per corpus."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.layer: EncryptedLayer = jwe_layer(PLAINTEXT)
        self._gpg: tuple[GpgHome, bytes, str] | None = None

    def descriptor(self, annotations: dict[str, str], keep: bool = True) -> Descriptor:
        """The genuine layer's descriptor with ``annotations`` added (or instead, if not ``keep``)."""
        base = dict(self.layer.descriptor.annotations) if keep else {PUBOPTS_ANNOTATION: self.pubopts}
        base.update(annotations)
        d = self.layer.descriptor
        return Descriptor(d.media_type, d.digest, d.size, base)

    @property
    def pubopts(self) -> str:
        """The genuine layer's public options annotation."""
        return self.layer.descriptor.annotations[PUBOPTS_ANNOTATION]

    @property
    def genuine_jwe(self) -> str:
        """The genuine layer's JWE annotation value (one element)."""
        return self.layer.descriptor.annotations[JWE_ANNOTATION]

    def jwe_dc(self) -> DecryptConfig:
        """A decrypt config holding the genuine JWE key."""
        return DecryptConfig({params.PRIVKEYS: [self.layer.private_key_pem], params.PRIVKEYS_PASSWORDS: [None]})

    def payload(self, descriptor: Descriptor, dc: DecryptConfig | None = None) -> bytes:
        """The fd-3 bytes for ``descriptor``; the genuine JWE key by default."""
        return encode_payload(Payload(dc if dc is not None else self.jwe_dc(), descriptor))

    def gpg_key(self) -> tuple[bytes, str]:
        """A fresh OpenPGP secret key ring (no passphrase) and its encryption subkey ID (16 hex digits)."""
        if self._gpg is None:
            home = GpgHome()
            home.generate("Corpus", "corpus@example.com")
            ring = home.export_secret("corpus@example.com")
            listing = home.run("--with-colons", "--list-keys", "corpus@example.com").decode()
            subkey = next(line.split(":")[4] for line in listing.splitlines() if line.startswith("sub:"))
            self._gpg = (home, ring, subkey)
        return self._gpg[1], self._gpg[2]

    def close(self) -> None:
        """Remove the GnuPG home made for the key ring, if any."""
        if self._gpg is not None:
            self._gpg[0].close()


def forged_pgp_message(key_id: bytes) -> bytes:
    """A session-key packet for ``key_id`` (random RSA-2048 value) and random encrypted data."""
    mpi = b"\x08\x00" + b"\x80" + os.urandom(255)
    pkesk = b"\x03" + key_id + b"\x01" + mpi
    data = b"\x01" + os.urandom(48)
    return _pgp_packet(1, pkesk) + _pgp_packet(18, data)


def _pgp_packet(tag: int, body: bytes) -> bytes:
    length = len(body)
    header = bytes([length]) if length < 192 else b"\xff" + length.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + header + body


def forged_compact_jwe(size: int = 256) -> str:
    """A compact RSA-OAEP JWE whose encrypted key is ``size`` random bytes."""
    header = b64url(b'{"alg":"RSA-OAEP","enc":"A256GCM"}')
    return ".".join([header, b64url(os.urandom(size)), b64url(os.urandom(12)), b64url(b"x"), b64url(os.urandom(16))])


def pgp_amplification(corpus: Corpus, forged: int, addressed: int) -> list[Case]:
    """Forged OpenPGP elements: to random key IDs (free to skip) and to our own subkey ID."""
    ring, subkey = corpus.gpg_key()
    dc = DecryptConfig({params.GPG_PRIVATEKEYS: [ring], params.GPG_PRIVATEKEYS_PASSWORDS: [None]})
    ours = bytes.fromhex(subkey)
    cases = []
    for name, count, key_id in (
        ("random-key-ids", forged, None),
        ("random-key-ids-under-the-cap", 60, None),
        ("our-key-id", addressed, ours),
        ("wildcard-key-id", addressed, bytes(8)),
    ):
        elements = [b64(forged_pgp_message(key_id or os.urandom(8))) for _ in range(count)]
        descriptor = corpus.descriptor({PGP_ANNOTATION: ",".join(elements)}, keep=False)
        cases.append(Case("pgp-amplification", name, corpus.layer.blob, corpus.payload(descriptor, dc)))
    return cases


def trial_caps(corpus: Corpus, elements: int, recipients: int) -> list[Case]:
    """Tens of thousands of JWE elements, or of recipients in one JWE, each worth an RSA decryption."""
    many = ",".join(b64(forged_compact_jwe().encode()) for _ in range(elements))
    entries = [{"header": {"alg": "RSA-OAEP"}, "encrypted_key": b64url(os.urandom(256))} for _ in range(recipients)]
    document = {
        "protected": b64url(b'{"enc":"A256GCM"}'),
        "recipients": entries,
        "iv": b64url(os.urandom(12)),
        "ciphertext": b64url(b"x"),
        "tag": b64url(os.urandom(16)),
    }
    general = b64(json.dumps(document).encode())
    return [
        Case("trial-cap", "jwe-elements", corpus.layer.blob, corpus.payload(corpus.descriptor({JWE_ANNOTATION: many}))),
        Case(
            "trial-cap",
            "jwe-recipients",
            corpus.layer.blob,
            corpus.payload(corpus.descriptor({JWE_ANNOTATION: general})),
        ),
    ]


def _pkcs7_dc(corpus: Corpus) -> DecryptConfig:
    key = new_key("rsa2048")
    return DecryptConfig(
        {
            params.PRIVKEYS: [private_pem(key)],
            params.PRIVKEYS_PASSWORDS: [None],
            params.X509S: [certificate_pem(certificate(key))],
        }
    )


def pkcs7_memory(corpus: Corpus, tiny: int) -> list[Case]:
    """EnvelopedData whose recipientInfos (or encryptedContent) hold millions of two-byte elements."""
    dc = _pkcs7_dc(corpus)
    flat = der.encode(der.SET, b"\x05\x00" * tiny)
    nested = b"\x05\x00"
    for _ in range(min(tiny, 100_000)):
        nested = der.encode(der.SEQUENCE, nested) if len(nested) < (1 << 24) else nested
    cases = []
    for name, recipient_infos in (("flat-set", flat), ("deep-nesting", der.encode(der.SET, nested))):
        enveloped = der.sequence(der.integer(0), recipient_infos, der.sequence(der.oid("1.2.840.113549.1.7.1")))
        blob = der.sequence(der.oid("1.2.840.113549.1.7.3"), der.encode(0xA0, enveloped))
        descriptor = corpus.descriptor({PKCS7_ANNOTATION: b64(blob)}, keep=False)
        cases.append(Case("pkcs7-memory", name, corpus.layer.blob, corpus.payload(descriptor, dc)))
    pieces = der.encode(0xA0, der.encode(der.OCTET_STRING, b"") * tiny)
    content = der.sequence(
        der.oid("1.2.840.113549.1.7.1"),
        der.sequence(der.oid("2.16.840.1.101.3.4.1.2"), der.encode(der.OCTET_STRING, bytes(16))),
        pieces,
    )
    recipient = der.sequence(
        der.integer(0),
        der.sequence(der.sequence(), der.integer(1)),
        der.sequence(der.oid("1.2.840.113549.1.1.1")),
        der.encode(der.OCTET_STRING, bytes(256)),
    )
    enveloped = der.sequence(der.integer(0), der.set_of(recipient), content)
    blob = der.sequence(der.oid("1.2.840.113549.1.7.3"), der.encode(0xA0, enveloped))
    descriptor = corpus.descriptor({PKCS7_ANNOTATION: b64(blob)}, keep=False)
    cases.append(Case("pkcs7-memory", "content-pieces", corpus.layer.blob, corpus.payload(descriptor, dc)))
    return cases


def error_text(corpus: Corpus, annotations: int, value_size: int) -> list[Case]:
    """Inputs whose every reason would be repeated, or whose values are huge, in the error text."""
    providers = {f"{ANNOTATION_PREFIX}provider.p{number}": "eA==" for number in range(annotations)}
    long_name = {f"{ANNOTATION_PREFIX}provider.{'n' * value_size}": "eA=="}
    bad_elements = {JWE_ANNOTATION: ",".join(["e30="] * annotations)}  # "{}": parses, then fails
    long_element = {JWE_ANNOTATION: b64(b"{" + b" " * value_size + b"}")}
    return [
        Case(
            "error-text", "provider-annotations", corpus.layer.blob, corpus.payload(corpus.descriptor(providers, False))
        ),
        Case(
            "error-text", "long-provider-name", corpus.layer.blob, corpus.payload(corpus.descriptor(long_name, False))
        ),
        Case(
            "error-text", "repeated-reasons", corpus.layer.blob, corpus.payload(corpus.descriptor(bad_elements, False))
        ),
        Case("error-text", "long-element", corpus.layer.blob, corpus.payload(corpus.descriptor(long_element, False))),
    ]


def keys_dir_walk(corpus: Corpus, fan_out: int) -> list[Case]:
    """Keys directories that point into /usr, or hold huge trees, next to the genuine key."""
    cases = []
    for name in ("usr-symlink", "wide-tree", "deep-tree", "kubernetes-secret"):
        root = corpus.work / f"keys-{name}"
        root.mkdir()
        if name == "kubernetes-secret":
            kubernetes_secret_volume(root, {"layer.pem": corpus.layer.private_key_pem})
        else:  # named to sort first: the walk's limits may leave out what comes after junk
            (root / "a-layer.pem").write_bytes(corpus.layer.private_key_pem)
        if name == "usr-symlink":
            (root / "usr").symlink_to("/usr")
        elif name == "wide-tree":
            for number in range(fan_out):
                (root / f"f{number:06d}").write_bytes(b"not a key")
        elif name == "deep-tree":
            path = root
            for number in range(min(fan_out, 200)):
                path = path / f"d{number}"
            path.mkdir(parents=True)
            (path / "deep.pem").write_bytes(b"not a key")
        descriptor = corpus.descriptor({})
        payload = corpus.payload(descriptor, DecryptConfig())
        cases.append(
            Case(
                "keys-dir-walk", name, corpus.layer.blob, payload, ["--decryption-keys-path", str(root)], decrypts=True
            )
        )
    return cases


def _jwe_to(corpus: Corpus, opts: bytes) -> str:
    """A JWE element wrapping ``opts`` for the genuine key."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(corpus.layer.private_key_pem, None)
    wrapped = JWE.wrap_keys(EncryptConfig({params.PUBKEYS: [public_pem(key)]}), opts)
    assert wrapped is not None
    return b64(wrapped)


def _flattened_jwe(corpus: Corpus, protected: dict[str, Any], plaintext: bytes) -> str:
    """A flattened JWE for the genuine key with any protected header (RSA-OAEP, A256GCM)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = serialization.load_pem_private_key(corpus.layer.private_key_pem, None)
    cek, iv = os.urandom(32), os.urandom(12)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    protected_b64 = b64url(json.dumps(protected).encode())
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected_b64.encode())
    document = {
        "protected": protected_b64,
        "encrypted_key": b64url(key.public_key().encrypt(cek, oaep)),  # type: ignore[union-attr]
        "iv": b64url(iv),
        "ciphertext": b64url(sealed[:-16]),
        "tag": b64url(sealed[-16:]),
    }
    return b64(json.dumps(document).encode())


def malformed_jwe(corpus: Corpus, depth: int) -> list[Case]:
    """Malformed JWE elements ahead of the genuine one: each must be skipped, the layer decrypted."""
    good = json.loads(base64.b64decode(corpus.genuine_jwe))
    deep = "[" * depth + "]" * depth
    variants: dict[str, Any] = {
        "protected-is-a-list": {**good, "protected": ["x"]},
        "header-is-a-string": {**good, "header": "x", "recipients": [{"header": "x", "encrypted_key": "AA"}]},
        "recipients-are-strings": {**good, "recipients": ["x", "y"]},
        "unprotected-is-a-list": {**good, "unprotected": [1, 2]},
        "non-ascii-aad": {**good, "aad": "\u00e9\u4e2d"},
        "non-ascii-protected": {**good, "protected": "\u00e9"},
        "encrypted-key-is-a-number": {**good, "encrypted_key": 7},
        "bad-curve-name": {
            **good,
            "protected": b64url(
                json.dumps({"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "epk": {"kty": "EC", "crv": ["P-256"]}}).encode()
            ),
        },
        "epk-is-a-list": {
            **good,
            "protected": b64url(json.dumps({"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "epk": [1]}).encode()),
        },
        "alg-is-an-object": {**good, "protected": b64url(json.dumps({"alg": {"x": 1}, "enc": "A256GCM"}).encode())},
        "deep-protected-header": {**good, "protected": b64url(('{"alg":' + deep + "}").encode())},
    }
    elements = {name: b64(json.dumps(value).encode()) for name, value in variants.items()}
    elements["deep-document"] = b64(deep.encode())
    elements["compact-non-ascii"] = b64("\u00e9.a.b.c.d".encode())
    ec_key = new_key("p256")
    ec_dc = DecryptConfig(
        {params.PRIVKEYS: [corpus.layer.private_key_pem, private_pem(ec_key)], params.PRIVKEYS_PASSWORDS: [None, None]}
    )
    elements["invalid-deflate-body"] = _flattened_jwe(
        corpus, {"alg": "RSA-OAEP", "enc": "A256GCM", "zip": "DEF"}, b"\xff" * 64
    )
    elements["zip-is-a-list"] = _flattened_jwe(corpus, {"alg": "RSA-OAEP", "enc": "A256GCM", "zip": ["DEF"]}, b"{}")
    cases = []
    for name, element in elements.items():
        descriptor = corpus.descriptor({JWE_ANNOTATION: element + "," + corpus.genuine_jwe})
        cases.append(Case("malformed-jwe", name, corpus.layer.blob, corpus.payload(descriptor, ec_dc), decrypts=True))
    return cases


def deep_json(corpus: Corpus, depth: int) -> list[Case]:
    """Deeply nested JSON where public options, private options and PKCS#11 blobs belong."""
    deep = ("[" * depth + "]" * depth).encode()
    deep_object = ('{"a":' * depth + "1" + "}" * depth).encode()
    cases = [
        Case(
            "deep-json",
            "pubopts",
            corpus.layer.blob,
            corpus.payload(corpus.descriptor({PUBOPTS_ANNOTATION: b64(deep)})),
        ),
        Case(
            "deep-json",
            "pubopts-object",
            corpus.layer.blob,
            corpus.payload(corpus.descriptor({PUBOPTS_ANNOTATION: b64(deep_object)})),
        ),
        Case(
            "deep-json",
            "privopts",
            corpus.layer.blob,
            corpus.payload(corpus.descriptor({JWE_ANNOTATION: _jwe_to(corpus, deep)})),
        ),
    ]
    key_file = b"pkcs11:\n  uri: pkcs11:token=none;object=none?module-name=none\n"
    dc = DecryptConfig({params.PKCS11_YAMLS: [key_file]})
    for name, blob in (
        ("pkcs11-blob", deep),
        ("pkcs11-hash-is-a-list", b'{"version":0,"recipients":[{"version":0,"hash":["sha1"],"blob":"AA=="}]}'),
        ("pkcs11-version-is-a-list", b'{"version":[0],"recipients":[]}'),
    ):
        descriptor = corpus.descriptor({PKCS11_ANNOTATION: b64(blob)}, keep=False)
        cases.append(Case("deep-json", name, corpus.layer.blob, corpus.payload(descriptor, dc)))
    return cases


def malformed_key_files(corpus: Corpus, depth: int) -> list[Case]:
    """A keys directory with malformed JWK (and other) files next to the genuine key."""
    root = corpus.work / "keys-malformed"
    root.mkdir()
    bad = {
        "a-rsa-members-are-numbers.jwk": json.dumps({"kty": "RSA", "n": 1, "e": 2, "d": 3}),
        "b-ec-curve-is-a-list.jwk": json.dumps({"kty": "EC", "crv": ["P-256"], "x": "AA", "y": "AA", "d": "AA"}),
        "c-ec-unknown-curve.jwk": json.dumps({"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA", "d": "AA"}),
        "d-kty-is-an-object.jwk": json.dumps({"kty": {"a": 1}, "d": "AA"}),
        "e-deep.jwk": "[" * depth + "]" * depth,
        "f-deep-object.jwk": '{"kty":' * depth + "1" + "}" * depth,
        "g-rsa-zero-modulus.jwk": json.dumps({"kty": "RSA", "n": "AA", "e": "AQAB", "d": "AQ"}),
        "h-rsa-bad-primes.jwk": json.dumps({"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQ", "p": "Aw", "q": "BQ"}),
        "i-invalid-utf8.jwk": b'{"kty":"\xff"}',
    }
    for name, text in bad.items():
        (root / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    (root / "z-genuine.pem").write_bytes(corpus.layer.private_key_pem)
    descriptor = corpus.descriptor({})
    args = ["--decryption-keys-path", str(root)]
    return [
        Case(
            "malformed-key-files",
            "jwk-files",
            corpus.layer.blob,
            corpus.payload(descriptor, DecryptConfig()),
            args,
            decrypts=True,
        ),
        Case(
            "malformed-key-files",
            "jwk-in-payload",
            corpus.layer.blob,
            corpus.payload(
                descriptor,
                DecryptConfig(
                    {
                        params.PRIVKEYS: [v if isinstance(v, bytes) else v.encode() for v in bad.values()]
                        + [corpus.layer.private_key_pem],
                        params.PRIVKEYS_PASSWORDS: [None] * (len(bad) + 1),
                    }
                ),
            ),
            decrypts=True,
        ),
    ]


def serial_zero_certificate(corpus: Corpus) -> bytes:
    """A DER certificate whose serial number is 0 (re-encoded from a serial-1 certificate)."""
    key = new_key("rsa2048")
    encoded = certificate_der(certificate(key, serial=1))
    marker = b"\xa0\x03\x02\x01\x02\x02\x01\x01"  # [0] version v3, then INTEGER 1
    assert marker in encoded
    return encoded.replace(marker, marker[:-1] + b"\x00", 1)


def hygiene(corpus: Corpus, work: Path) -> list[Case]:
    """Warnings, control characters, and a provider that echoes what it was sent."""
    keys = work / "keys-serial-zero"
    keys.mkdir()
    (keys / "zero.crt").write_bytes(serial_zero_certificate(corpus))
    (keys / "layer.pem").write_bytes(corpus.layer.private_key_pem)
    escape = {ANNOTATION_PREFIX + "provider.\x1b[31mred\r\x07x": "eA==", JWE_ANNOTATION: b64(b"{\x1b[2J}")}
    echo = work / "echo-provider"
    echo.write_text(f"#!{sys.executable}\nimport sys\nsys.stderr.write(sys.stdin.read())\nsys.exit(1)\n")
    echo.chmod(echo.stat().st_mode | stat.S_IXUSR)
    config = work / "echo-provider.json"
    config.write_text(json.dumps({"key-providers": {"echo": {"cmd": {"path": str(echo), "args": []}}}}))
    provider_descriptor = corpus.descriptor({ANNOTATION_PREFIX + "provider.echo": "eA=="}, keep=False)
    env = {"OCICRYPT_KEYPROVIDER_CONFIG": str(config), "CTD_DECODER_PROVIDER_SEND_ALL_KEYS": "1"}
    return [
        Case(
            "hygiene",
            "serial-zero-certificate",
            corpus.layer.blob,
            corpus.payload(corpus.descriptor({}), DecryptConfig()),
            ["--decryption-keys-path", str(keys)],
            decrypts=True,
        ),
        Case("hygiene", "control-characters", corpus.layer.blob, corpus.payload(corpus.descriptor(escape, False))),
        Case("hygiene", "provider-echoes-request", corpus.layer.blob, corpus.payload(provider_descriptor), env=env),
    ]


def pkcs8_trailing_bytes(corpus: Corpus) -> list[Case]:
    """A DER PKCS#8 key with bytes after the structure (Go accepts it)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(corpus.layer.private_key_pem, None)
    raw = private_pem(key, "der") + b"\x00\x00trailing"
    dc = DecryptConfig({params.PRIVKEYS: [raw], params.PRIVKEYS_PASSWORDS: [None]})
    return [
        Case(
            "compatibility",
            "pkcs8-trailing-bytes",
            corpus.layer.blob,
            corpus.payload(corpus.descriptor({}), dc),
            decrypts=True,
        )
    ]


Builder = Callable[[Corpus], list[Case]]


@dataclass(frozen=True)
class CorpusSizes:
    """How large each attack class is made."""

    forged_packets: int
    trial_elements: int
    trial_recipients: int
    pkcs7_tiny: int
    annotations: int
    annotation_size: int
    fan_out: int
    depth: int
    addressed_packets: int = 60


# Every class at a size that crosses every limit but keeps a test run short.
SMALL_SIZES = CorpusSizes(300, 2000, 2000, 300_000, 5000, 200_000, 3000, 50_000)
# Every class at the sizes the adversarial review used.
FULL_SIZES = CorpusSizes(1300, 20_000, 25_000, 4_000_000, 50_000, 1_000_000, 30_000, 200_000)


def corpus_cases(corpus: Corpus, sizes: CorpusSizes) -> Iterator[Case]:
    """Every attack class, made at ``sizes``."""
    yield from pgp_amplification(corpus, forged=sizes.forged_packets, addressed=sizes.addressed_packets)
    yield from trial_caps(corpus, elements=sizes.trial_elements, recipients=sizes.trial_recipients)
    yield from pkcs7_memory(corpus, tiny=sizes.pkcs7_tiny)
    yield from error_text(corpus, annotations=sizes.annotations, value_size=sizes.annotation_size)
    yield from keys_dir_walk(corpus, fan_out=sizes.fan_out)
    yield from malformed_jwe(corpus, depth=sizes.depth)
    yield from deep_json(corpus, depth=sizes.depth)
    yield from malformed_key_files(corpus, depth=sizes.depth)
    yield from hygiene(corpus, corpus.work)
    yield from pkcs8_trailing_bytes(corpus)


def small_corpus(corpus: Corpus) -> Iterator[Case]:
    """Every class at :data:`SMALL_SIZES`."""
    return corpus_cases(corpus, SMALL_SIZES)


def full_corpus(corpus: Corpus) -> Iterator[Case]:
    """Every class at :data:`FULL_SIZES`."""
    return corpus_cases(corpus, FULL_SIZES)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def run_measured(command: list[str], case: Case, timeout: float = 600) -> tuple[int, bytes, bytes, float, int]:
    """Run ``command`` on ``case``; return (status, stdout, stderr, seconds, peak RSS in KiB).

    The peak RSS is GNU time's (``/usr/bin/time``, the process's own high-water mark) when installed;
    otherwise wait4's, which on Linux may also count memory the child had before exec.
    """
    gnu_time = shutil.which("time", path="/usr/bin")
    rss_file: str | None = None
    if gnu_time:
        handle, rss_file = tempfile.mkstemp(prefix="adv-rss-")
        os.close(handle)
        command = [gnu_time, "-f", "%M", "-o", rss_file, *command]
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin.write(case.blob)
        stdin.seek(0)
        started = time.monotonic()
        # fd 3 set up here rather than in a preexec_fn: without one, subprocess uses vfork, so the
        # child's peak RSS does not start with a copy of this (large) process.
        saved = os.dup(3) if _is_open(3) else None
        os.dup2(read_end, 3)
        try:
            process = subprocess.Popen(
                command + case.args,
                stdin=stdin,
                stdout=out,
                stderr=err,
                env={**os.environ, **case.env},
                pass_fds=(3,),
            )
        finally:
            if saved is None:
                os.close(3)
            else:
                os.dup2(saved, 3)
                os.close(saved)
        os.close(read_end)
        with os.fdopen(write_end, "wb") as pipe, contextlib.suppress(BrokenPipeError):
            pipe.write(case.payload)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        peak = usage.ru_maxrss
        if rss_file is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                peak = int(open(rss_file).read().split()[-1])  # noqa: SIM115
            os.unlink(rss_file)
        return process.returncode, out.read(), err.read(), elapsed, peak
