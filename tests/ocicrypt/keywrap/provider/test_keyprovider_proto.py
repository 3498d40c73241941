"""The checked-in keyprovider_pb2 module is what grpc_tools.protoc makes from proto/keyprovider.proto."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ctd_decoder.ocicrypt.keywrap.provider import keyprovider_pb2

ROOT = Path(__file__).resolve().parents[4]
PROTO = ROOT / "proto" / "keyprovider.proto"
GENERATED = ROOT / "ctd_decoder" / "ocicrypt" / "keywrap" / "provider"
_VERSION = re.compile(r"^# Protobuf Python Version: .*$", re.M)


def _regenerate(out: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            str(PROTO),
        ],
        check=True,
        capture_output=True,
    )


def test_generated_module_matches_the_proto(tmp_path: Path) -> None:
    _regenerate(tmp_path)
    fresh = (tmp_path / "keyprovider_pb2.py").read_text()
    checked_in = (GENERATED / "keyprovider_pb2.py").read_text()
    # The serialized descriptor is what matters on the wire; compare it exactly.
    pattern = re.compile(r"AddSerializedFile\((b'.*?')\)", re.S)
    assert pattern.search(fresh).group(1) == pattern.search(checked_in).group(1)  # type: ignore[union-attr]
    # With the same protoc the whole file must be identical (regenerate with the command in the .proto).
    if _VERSION.search(fresh).group(0) == _VERSION.search(checked_in).group(0):  # type: ignore[union-attr]
        assert fresh == checked_in
        assert (tmp_path / "keyprovider_pb2.pyi").read_text() == (GENERATED / "keyprovider_pb2.pyi").read_text()


def test_wire_names_are_ocicrypts() -> None:
    service = keyprovider_pb2.DESCRIPTOR.services_by_name["KeyProviderService"]
    assert service.full_name == "keyprovider.KeyProviderService"
    assert sorted(m.name for m in service.methods) == ["UnWrapKey", "WrapKey"]
    request = keyprovider_pb2.keyProviderKeyWrapProtocolInput(KeyProviderKeyWrapProtocolInput=b"{}")
    assert request.SerializeToString() == b"\x0a\x02{}"
    response = keyprovider_pb2.keyProviderKeyWrapProtocolOutput.FromString(b"\x0a\x01x")
    assert response.KeyProviderKeyWrapProtocolOutput == b"x"
