"""Key providers for tests: real programs and a real gRPC server, written to a temp dir at test time.

Both speak ocicrypt's protocol with a toy "wrapping" (XOR inside a small JSON document, like the Go
fixtures' providers) and record every request they receive, so tests can check what a provider saw.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_TOY = '''
import base64, json

def xor(data):
    return bytes(c ^ 0x5A for c in data)

def answer(request):
    """Return the response document for a request document."""
    if request["op"] == "keywrap":
        opts = base64.b64decode(request["keywrapparams"]["optsdata"])
        ann = json.dumps({"toy": base64.b64encode(xor(opts)).decode()}).encode()
        return {"keywrapresults": {"annotation": base64.b64encode(ann).decode()}}
    ann = json.loads(base64.b64decode(request["keyunwrapparams"]["annotation"]))
    opts = xor(base64.b64decode(ann["toy"]))
    return {"keyunwrapresults": {"optsdata": base64.b64encode(opts).decode()}}
'''

CMD_PROVIDER = (
    "#!{python}\n"
    + _TOY
    + """
import os, subprocess, sys, time

mode, record = sys.argv[1], sys.argv[2]
request = json.loads(sys.stdin.buffer.read())
with open(record, "a") as handle:
    handle.write(json.dumps(request) + "\\n")
if request["op"] == "keywrap" or mode == "ok":
    sys.stdout.write(json.dumps(answer(request)))
elif mode == "fail":
    sys.stderr.write("provider refuses: " + "E" * 10000)
    sys.exit(3)
elif mode == "garbage":
    sys.stdout.write("this is not JSON {")
elif mode == "null":
    sys.stdout.write(json.dumps({"keyunwrapresults": {"optsdata": None}}))
elif mode == "hang":
    grandchild = subprocess.Popen(["sleep", "1000"])
    with open(record + ".pids", "w") as handle:
        handle.write(f"{os.getpid()} {grandchild.pid}")
    time.sleep(1000)
"""
)

GRPC_SERVER = (
    _TOY
    + """
import sys, time
from concurrent import futures

import grpc

from ctd_decoder.ocicrypt.keywrap.provider import keyprovider_pb2 as pb

address, record, mode, *tls = sys.argv[1:]

def handle(request, context):
    document = json.loads(request.KeyProviderKeyWrapProtocolInput)
    with open(record, "a") as out:
        out.write(json.dumps(document) + "\\n")
    if mode == "hang" and document["op"] == "keyunwrap":
        time.sleep(60)
    if mode == "echo" and document["op"] == "keyunwrap":  # a provider whose error repeats the request
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "refused: " + request.KeyProviderKeyWrapProtocolInput.decode())
    output = json.dumps(answer(document)).encode()
    return pb.keyProviderKeyWrapProtocolOutput(KeyProviderKeyWrapProtocolOutput=output)

handler = grpc.unary_unary_rpc_method_handler(
    handle,
    request_deserializer=pb.keyProviderKeyWrapProtocolInput.FromString,
    response_serializer=pb.keyProviderKeyWrapProtocolOutput.SerializeToString,
)
server = grpc.server(futures.ThreadPoolExecutor(4))
methods = {"WrapKey": handler, "UnWrapKey": handler}
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("keyprovider.KeyProviderService", methods),))
if tls:
    key, cert, client_ca = (open(path, "rb").read() for path in tls)
    credentials = grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca, require_client_auth=True)
    server.add_secure_port(address, credentials)
else:
    server.add_insecure_port(address)
server.start()
server.wait_for_termination()
"""
)


def write_cmd_provider(directory: Path, name: str, mode: str) -> tuple[Path, Path]:
    """Write a provider program and a config naming it; return (config path, request record path)."""
    script = directory / f"{name}-provider.py"
    script.write_text(CMD_PROVIDER.replace("{python}", sys.executable))
    script.chmod(0o755)
    record = directory / f"{name}-requests.jsonl"
    config = directory / f"{name}-keyprovider.conf"
    provider = {"cmd": {"path": str(script), "args": [mode, str(record)]}}
    config.write_text(json.dumps({"key-providers": {name: provider}}))
    return config, record


def write_grpc_config(directory: Path, name: str, target: str, tls: dict[str, object] | None = None) -> Path:
    """Write a config naming a gRPC provider at ``target``; return its path."""
    provider: dict[str, object] = {"grpc": target}
    if tls is not None:
        provider["grpc-tls"] = tls
    config = directory / f"{name}-keyprovider.conf"
    config.write_text(json.dumps({"key-providers": {name: provider}}))
    return config


def requests(record: Path) -> list[dict[str, object]]:
    """Return the requests a provider recorded, oldest first."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class GrpcServer:
    """A running gRPC provider process."""

    process: subprocess.Popen[bytes]
    target: str
    record: Path

    def stop(self) -> None:
        """Kill the server and reap it."""
        self.process.kill()
        self.process.wait(timeout=30)


def start_grpc_server(directory: Path, mode: str = "ok", tls: tuple[Path, Path, Path] | None = None) -> GrpcServer:
    """Start a gRPC provider on a free 127.0.0.1 port; wait until it accepts connections."""
    script = directory / "grpc_provider.py"
    script.write_text(GRPC_SERVER)
    record = directory / "grpc-requests.jsonl"
    port = free_port()
    argv = [sys.executable, str(script), f"127.0.0.1:{port}", str(record), mode]
    argv += [str(path) for path in tls or ()]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = GrpcServer(process, f"127.0.0.1:{port}", record)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gRPC provider exited: {process.stderr.read() if process.stderr else b''!r}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("gRPC provider did not start listening")


@dataclass
class Pki:
    """A CA, a server certificate for ``provider.test`` and 127.0.0.1, and a client certificate."""

    ca: Path
    server_key: Path
    server_cert: Path
    client_key: Path
    client_cert: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
    names: list[x509.GeneralName],
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    """Generate the CA and both certificates with ``cryptography``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("test CA", ca_key, None, ca_key, True, [])
    pki = Pki(*(directory / n for n in ("ca.pem", "server.key", "server.pem", "client.key", "client.pem")))
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for key_path, cert_path, subject, names in (
        (
            pki.server_key,
            pki.server_cert,
            "provider.test",
            [x509.DNSName("provider.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ),
        (pki.client_key, pki.client_cert, "ctd-decoder client", []),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(key_path, key)
        cert = _certificate(subject, key, ca_cert.subject, ca_key, False, names)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pki
