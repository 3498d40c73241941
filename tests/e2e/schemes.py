"""Key-wrapping schemes for the end-to-end tests: how to encrypt an image to a recipient and which
files (keys directory) or parameters (fd-3 payload) decrypt it again.

Adding a scheme = one function returning a :class:`Recipient` and one line in :data:`SCHEMES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from support.keygen import new_key, private_pem, public_pem

from ctd_decoder import config as params
from ctd_decoder.config import DecryptConfig, Parameters


@dataclass
class Recipient:
    """One recipient of an encrypted image."""

    scheme: str
    encryption_keys: list[str]  # skopeo --encryption-key values
    key_files: dict[str, bytes]  # what goes into the node's keys directory
    parameters: Parameters  # what ctr-enc --key would put into the payload's DecryptConfig
    skopeo_env: dict[str, str] = field(default_factory=dict)
    decoder_env: dict[str, str] = field(default_factory=dict)

    def decrypt_config(self) -> DecryptConfig:
        return DecryptConfig({name: list(values) for name, values in self.parameters.items()})


def jwe(kind: str) -> Callable[[Path], Recipient]:
    """A JWE recipient with a fresh ``kind`` key (``rsa2048``, ``p256``, ``p384``)."""

    def make(directory: Path) -> Recipient:
        directory.mkdir(parents=True, exist_ok=True)
        key = new_key(kind)
        public = directory / f"jwe-{kind}.pub.pem"
        public.write_bytes(public_pem(key))
        private = private_pem(key)
        return Recipient(
            scheme="jwe",
            encryption_keys=[f"jwe:{public}"],
            key_files={f"jwe-{kind}.pem": private},
            parameters={params.PRIVKEYS: [private], params.PRIVKEYS_PASSWORDS: [None]},
        )

    return make


SCHEMES: dict[str, Callable[[Path], Recipient]] = {
    "jwe-rsa2048": jwe("rsa2048"),
    "jwe-p256": jwe("p256"),
    "jwe-p384": jwe("p384"),
}
