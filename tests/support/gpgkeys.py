"""Throw-away GnuPG homes with freshly generated keys, for OpenPGP tests."""

from __future__ import annotations

import shutil
import subprocess

from .tempdirs import short_tempdir

GPG = shutil.which("gpg")
GPGCONF = shutil.which("gpgconf")


def require_gpg() -> tuple[str, str]:
    """Return the gpg and gpgconf paths; fail (never skip) if GnuPG is missing."""
    assert GPG and GPGCONF, "gpg is not installed (apt-get install gnupg); the test runner installs it"
    return GPG, GPGCONF


class GpgHome:
    """A GNUPGHOME with a short path (the agent socket path is limited) that is removed on close."""

    def __init__(self, cheap_s2k: bool = False) -> None:
        require_gpg()
        self.path = short_tempdir("tg-")
        if cheap_s2k:  # else the agent spends about a second protecting every passphrase-protected export
            (self.path / "gpg-agent.conf").write_text("s2k-count 65536\n")

    def run(self, *args: str, input: bytes | None = None) -> bytes:
        """Run gpg in batch mode on this home and return its stdout."""
        result = subprocess.run(
            [GPG or "gpg", "--homedir", str(self.path), "--batch", "--pinentry-mode", "loopback", *args],
            input=input,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout

    def generate(self, name: str, email: str, passphrase: str = "", curve: bool = False) -> str:
        """Make an RSA-2048 key (sign/certify) with an RSA-2048 encryption subkey; return its fingerprint.

        ``curve``: Ed25519 with a Curve25519 (ECDH) subkey instead, which takes milliseconds, not seconds.
        """
        uid = f"{name} <{email}>"
        primary, subkey = ("ed25519", "cv25519") if curve else ("rsa2048", "rsa2048")
        self.run("--passphrase", passphrase, "--quick-gen-key", uid, primary, "sign,cert", "never")
        fingerprint = self.fingerprint(email)
        self.run("--passphrase", passphrase, "--quick-add-key", fingerprint, subkey, "encr", "never")
        return fingerprint

    def fingerprint(self, who: str) -> str:
        """Return the primary key fingerprint of ``who``."""
        for line in self.run("--with-colons", "--list-keys", who).decode().splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise AssertionError(f"no key for {who}")

    def export_secret(self, who: str, passphrase: str = "", armor: bool = False) -> bytes:
        """Export the secret key ring of ``who`` (binary unless ``armor``)."""
        return self.run("--passphrase", passphrase, *(["--armor"] if armor else []), "--export-secret-keys", who)

    def export_public(self, *who: str) -> bytes:
        """Export the public keys of ``who`` (all if none given), binary."""
        return self.run("--export", *who)

    def close(self) -> None:
        """Stop this home's agent and remove it."""
        subprocess.run(
            [GPGCONF or "gpgconf", "--homedir", str(self.path), "--kill", "all"], capture_output=True, check=False
        )
        shutil.rmtree(self.path, ignore_errors=True)
