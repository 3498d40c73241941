"""A real SoftHSM2 token made at test time with softhsm2-util and pkcs11-tool."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
USER_PIN = "1234"
SO_PIN = "5678"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (apt-get install softhsm2 opensc); tests/run-all.sh installs it"
    return path


@dataclass
class Token:
    """A SoftHSM2 token in a temp dir: its config, label and the RSA key pairs made on it."""

    directory: Path
    label: str

    @property
    def conf(self) -> Path:
        return self.directory / "softhsm2.conf"

    def env(self) -> dict[str, str]:
        """The environment SoftHSM2 needs to find this token."""
        return {"SOFTHSM2_CONF": str(self.conf)}

    def generate_rsa(self, key_label: str, key_id: str, bits: int = 2048) -> None:
        """Make an RSA key pair on the token with pkcs11-tool."""
        subprocess.run(
            [
                _tool("pkcs11-tool"),
                "--module",
                SOFTHSM_MODULE,
                "--token-label",
                self.label,
                "--login",
                "--pin",
                USER_PIN,
                "--keypairgen",
                "--key-type",
                f"rsa:{bits}",
                "--label",
                key_label,
                "--id",
                key_id,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **self.env()},
            timeout=120,
        )

    def public_key_der(self, key_label: str) -> bytes:
        """Read the public key of ``key_label`` from the token as DER SubjectPublicKeyInfo."""
        result = subprocess.run(
            [
                _tool("pkcs11-tool"),
                "--module",
                SOFTHSM_MODULE,
                "--token-label",
                self.label,
                "--read-object",
                "--type",
                "pubkey",
                "--label",
                key_label,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **self.env()},
            timeout=60,
        )
        return result.stdout

    def key_file(self, key_label: str, pin: str | None = USER_PIN, module: str = "module-name=softhsm2") -> bytes:
        """An ocicrypt PKCS#11 YAML key file for ``key_label`` carrying this token's SOFTHSM2_CONF."""
        query = module + (f"&pin-value={pin}" if pin is not None else "")
        return (
            f"pkcs11:\n  uri: pkcs11:token={self.label};object={key_label}?{query}\n"
            f"module:\n  env:\n    SOFTHSM2_CONF: {self.conf}\n"
        ).encode()


def make_token(directory: Path, label: str = "test-token") -> Token:
    """Initialize a fresh SoftHSM2 token whose files live under ``directory``."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    token = Token(directory, label)
    token.conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    subprocess.run(
        [_tool("softhsm2-util"), "--init-token", "--free", "--label", label, "--pin", USER_PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
        env={**os.environ, **token.env()},
        timeout=60,
    )
    return token


def policy_file(directory: Path, allowed: list[str], directories: list[str] | None = None) -> Path:
    """Write an ocicrypt.conf with a pkcs11 module policy; return its path (for OCICRYPT_CONFIG)."""
    path = directory / "ocicrypt.conf"
    dirs = directories if directories is not None else [os.path.dirname(SOFTHSM_MODULE) + "/"]
    lines = ["pkcs11:", "  module-directories:"] + [f"    - {d}" for d in dirs]
    lines += ["  allowed-module-paths:"] + [f"    - {a}" for a in allowed]
    path.write_text("\n".join(lines) + "\n")
    return path
