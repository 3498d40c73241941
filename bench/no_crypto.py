"""The no-crypto stream processor of bench/pull.py: built, given each layer's plaintext, and its runs read back.

bench/no-crypto-processor.c is what containerd runs in place of a decoder (same processor entries, media types
and arguments): it finds the layer's digest in the payload on fd 3, drains stdin and writes the plaintext
prepared here for that digest to stdout, and appends the digest to a calls file. Its pull is what containerd
spends on any stream processor (a process per layer, the pipes, the payload, the wait for its exit) on top of
its own work, without any cryptography: the floor for any decoder.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.oci import image_layers

from ctd_decoder.ocicrypt.config import DecryptConfig
from ctd_decoder.ocicrypt.descriptor import Descriptor
from ctd_decoder.ocicrypt.layer import decrypt_layer

SOURCE = Path(__file__).with_name("no-crypto-processor.c")
PLAINTEXT_DIR_ENV = "CTD_BENCH_PLAINTEXT_DIR"
CALLS_FILE_ENV = "CTD_BENCH_CALLS_FILE"


def build(directory: Path) -> Path:
    """Compile the processor into ``directory``: statically where the C library allows it (as
    packaging/warm-client/compile.sh does: an exec then skips the dynamic loader), else dynamically."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler for the no-crypto processor: apt-get install gcc")
    output = directory / "no-crypto-processor"
    flags = ["-O2", "-Wall", "-Werror", "-o", str(output), str(SOURCE)]
    if subprocess.run([compiler, "-static", *flags], capture_output=True).returncode != 0:
        subprocess.run([compiler, *flags], check=True)
    return output


class NoCryptoProcessor:
    """The compiled processor, its directory of plaintexts (one file per encrypted layer's digest) and its
    calls file (one digest per run)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = build(directory)
        self.plaintext_dir = directory / "plaintext"
        self.plaintext_dir.mkdir()
        self.calls_file = directory / "calls"

    @property
    def env(self) -> dict[str, str]:
        """The processor entry's environment."""
        return {PLAINTEXT_DIR_ENV: str(self.plaintext_dir), CALLS_FILE_ENV: str(self.calls_file)}

    def add_image(self, encrypted_layout: Path, plain_layout: Path, dc: DecryptConfig) -> list[str]:
        """Give each encrypted layer of ``encrypted_layout`` the plaintext blob of the same place in
        ``plain_layout`` (the layout it was encrypted from); return the encrypted layers' digests.

        The pairing is checked: each layer's private options (unwrapped with ``dc``) name the digest of
        the plaintext it was encrypted from."""
        encrypted_layers = image_layers(encrypted_layout)["-"]
        plain_layers = image_layers(plain_layout)["-"]
        if len(encrypted_layers) != len(plain_layers):
            raise RuntimeError(f"{len(encrypted_layers)} encrypted layers for {len(plain_layers)} plain ones")
        for encrypted, plain in zip(encrypted_layers, plain_layers, strict=True):
            descriptor = Descriptor(
                encrypted["mediaType"], encrypted["digest"], encrypted["size"], dict(encrypted.get("annotations", {}))
            )
            encrypted_from = decrypt_layer(dc, descriptor).digest
            if encrypted_from != plain["digest"]:
                raise RuntimeError(f"{encrypted['digest']} was encrypted from {encrypted_from}, not {plain['digest']}")
            shutil.copyfile(_blob(plain_layout, plain["digest"]), self.plaintext_dir / _hex(encrypted["digest"]))
        return [str(layer["digest"]) for layer in encrypted_layers]

    def calls(self) -> list[str]:
        """The digests of the layers it served so far, in order."""
        return self.calls_file.read_text().splitlines() if self.calls_file.exists() else []


def _hex(digest: str) -> str:
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256":
        raise RuntimeError(f"not a sha256 digest: {digest}")
    return hex_digest


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / _hex(digest)
