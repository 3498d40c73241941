"""A layer only pays for the backends its annotations name: heavy imports stay out of the JWE path."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from support.decoder import decoder_command
from support.layers import jwe_layer

HEAVY = ("gnupg", "pkcs11", "grpc", "jwcrypto", "yaml")


def _imported_modules(layer_blob: bytes, payload: bytes) -> set[str]:
    read_end, write_end = os.pipe()
    os.write(write_end, payload)
    os.close(write_end)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *decoder_command()],
        input=layer_blob,
        capture_output=True,
        pass_fds=(3,),
        preexec_fn=lambda: os.dup2(read_end, 3),
        check=False,
    )
    os.close(read_end)
    assert result.returncode == 0, result.stderr.decode()
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", result.stderr.decode(), re.M)
    # importlib.import_module (the wrapper registry) is not reported, but every import statement is.
    assert "cryptography.hazmat.primitives.keywrap" in names, "importtime output was not captured"
    return {name.split(".")[0] for name in names}


def test_jwe_layer_imports_no_gpg_pkcs11_grpc_or_yaml() -> None:
    layer = jwe_layer(b"x" * 4096)
    imported = _imported_modules(layer.blob, layer.payload())
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
