"""The valid layers the differential inputs are made around.

Some are encrypted at test time by our own library, some are the Go-written fixtures. Each seed
keeps what a generator needs to vary it: its private key as an object (to re-serialize it in
another format), the public key (to re-wrap changed private options) and its private options.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from ctd_decoder.decoder.payload import parse_payload
from ctd_decoder.ocicrypt.config import DecryptConfig, Parameters
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.keywrap import PUBOPTS_ANNOTATION
from ctd_decoder.ocicrypt.layer import unwrap_private_options
from support.fixtures import load_case
from support.keygen import new_key, public_pem
from support.layers import jwe_layer


@dataclass
class Seed:
    """One valid layer with the payload that decrypts it."""

    name: str
    blob: bytes
    parameters: Parameters
    descriptor: Descriptor
    private_key: Any
    args: tuple[str, ...] = ()
    cwd: Path | None = None
    private_options: bytes = b""
    other_keys: dict[str, Any] = field(default_factory=dict)

    @property
    def public_key_pem(self) -> bytes:
        return public_pem(self.private_key)

    @property
    def pubopts(self) -> bytes:
        return base64.b64decode(self.descriptor.annotations[PUBOPTS_ANNOTATION])


def _load_private_key(data: bytes) -> Any:
    if data.lstrip().startswith(b"-----"):
        return serialization.load_pem_private_key(data, None)
    return serialization.load_der_private_key(data, None)


def _with_private_options(seed: Seed) -> Seed:
    dc = DecryptConfig({name: list(values) for name, values in seed.parameters.items()})
    if seed.parameters.get("privkeys"):
        seed.private_options = unwrap_private_options(dc, seed.descriptor)[0]
    return seed


def our_seed(name: str, kind: str, size: int) -> Seed:
    """A layer of ``size`` random bytes encrypted by our library to a fresh ``kind`` key."""
    layer = jwe_layer(os.urandom(size), kind)
    key = _load_private_key(layer.private_key_pem)
    parameters: Parameters = {"privkeys": [layer.private_key_pem], "privkeys-passwords": [None]}
    seed = Seed(name, layer.blob, parameters, layer.descriptor, key)
    seed.other_keys = {"rsa": new_key("rsa2048"), "ec": new_key("p256")}
    return _with_private_options(seed)


def fixture_seed(name: str, case_name: str, tmp_path: Path) -> Seed:
    """A Go-written fixture case (copied under ``tmp_path``)."""
    case = load_case(case_name, tmp_path)
    assert case.payload is not None
    payload = parse_payload(case.payload)
    parameters = payload.decrypt_config.parameters
    keys = parameters.get("privkeys") or sorted(path.read_bytes() for path in (case.directory / "keys").glob("*.pem"))
    key = _load_private_key(keys[0]) if keys and keys[0] else None
    seed = Seed(
        name,
        case.layer.read_bytes(),
        parameters,
        payload.descriptor,
        key,
        tuple(case.args),
        case.directory,
    )
    seed.other_keys = {"rsa": new_key("rsa2048"), "ec": new_key("p256")}
    return _with_private_options(seed)


def make_seeds(tmp_path: Path) -> dict[str, Seed]:
    """Every seed, by name."""
    seeds = [
        our_seed("ours-rsa", "rsa2048", 24 * 1024),
        our_seed("ours-ec", "p256", 3000),
        fixture_seed("go-jwe-rsa", "jwe-rsa2048-pkcs8-pem", tmp_path),
        fixture_seed("go-jwe-ec", "jwe-ec-p256-pkcs8-pem", tmp_path),
        fixture_seed("go-pkcs7", "pkcs7-rsa", tmp_path),
        fixture_seed("go-multi", "jwe-multi-recipient-ec-only", tmp_path),
        fixture_seed("go-node-jwe", "node-jwe-rsa", tmp_path),
    ]
    return {seed.name: seed for seed in seeds}
