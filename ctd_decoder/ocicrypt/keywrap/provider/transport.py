"""Calling a key provider: a program (JSON on stdin and stdout) or a gRPC service, always with a deadline.

A program runs in its own process group; when the deadline passes the whole group is killed with
SIGKILL and the child is reaped. Its stdout is limited to :data:`MAX_RESPONSE_SIZE` bytes and only
the first :data:`STDERR_LIMIT` bytes of its stderr are kept for error messages. gRPC calls carry the
deadline as their timeout; ``grpc`` is imported only here, only for gRPC providers.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import IO, Any

from ...errors import MissingBackendError
from ...spec import PROVIDER_TIMEOUT_ENV
from .config import Command, GrpcTls
from .errors import ProviderCallError, ProviderRpcError, ProviderTimeout

MAX_RESPONSE_SIZE = 16 * 1024 * 1024
STDERR_LIMIT = 4096
_CHUNK = 1 << 16
SERVICE = "keyprovider.KeyProviderService"


@dataclass
class CommandResult:
    """What a provider program did: exit status, stdout, and the start of its stderr."""

    returncode: int
    stdout: bytes
    stderr: bytes
    stderr_truncated: bool = False

    def stderr_text(self) -> str:
        """Return the kept stderr as text, marked when it was cut."""
        text = self.stderr.decode("utf-8", "replace").strip()
        return text + (f" [stderr cut at {STDERR_LIMIT} bytes]" if self.stderr_truncated else "")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the child's process group (it leads its own session) and reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()


class _Exchange:
    """Write the request to the child's stdin while reading its stdout and stderr, until a deadline."""

    def __init__(self, process: subprocess.Popen[bytes], request: bytes, deadline: float) -> None:
        self.process, self.request, self.deadline = process, memoryview(request), deadline
        self.written = 0
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.stderr_truncated = False
        self.selector = selectors.DefaultSelector()

    def run(self) -> None:
        """Pump the pipes until both outputs reach end of file; raise ProviderTimeout at the deadline."""
        assert self.process.stdin and self.process.stdout and self.process.stderr
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            os.set_blocking(stream.fileno(), False)
        if self.request:
            self.selector.register(self.process.stdin, selectors.EVENT_WRITE)
        else:
            self.process.stdin.close()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)
        self.selector.register(self.process.stderr, selectors.EVENT_READ)
        try:
            while self.selector.get_map():
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    raise ProviderTimeout("deadline passed")
                for key, _ in self.selector.select(remaining):
                    self._service(key.fileobj)  # type: ignore[arg-type]
        finally:
            self.selector.close()

    def _done(self, stream: IO[bytes]) -> None:
        self.selector.unregister(stream)
        stream.close()

    def _service(self, stream: IO[bytes]) -> None:
        if stream is self.process.stdin:
            self._write(stream)
            return
        try:
            chunk = os.read(stream.fileno(), _CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            self._done(stream)
        elif stream is self.process.stdout:
            self.stdout += chunk
            if len(self.stdout) > MAX_RESPONSE_SIZE:
                raise ProviderCallError(f"the provider wrote more than {MAX_RESPONSE_SIZE} bytes to stdout")
        else:
            room = STDERR_LIMIT - len(self.stderr)
            self.stderr += chunk[: max(room, 0)]
            self.stderr_truncated = self.stderr_truncated or len(chunk) > room

    def _write(self, stream: IO[bytes]) -> None:
        try:
            self.written += os.write(stream.fileno(), self.request[self.written : self.written + _CHUNK])
        except BlockingIOError:
            return
        except BrokenPipeError:
            self._done(stream)
            return
        if self.written >= len(self.request):
            self._done(stream)


def run_command(command: Command, request: bytes, timeout: float) -> CommandResult:
    """Run a provider program with ``request`` on stdin; kill its process group after ``timeout`` s."""
    argv = [command.path, *command.args]
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as err:
        raise ProviderCallError(f"Error while running command: {command.path}: {err.strerror or err}") from None
    exchange = _Exchange(process, request, time.monotonic() + timeout)
    try:
        exchange.run()
        process.wait(timeout=max(exchange.deadline - time.monotonic(), 0.001))
    except (ProviderTimeout, subprocess.TimeoutExpired):
        _kill_group(process)
        raise ProviderTimeout(
            f"key provider command {command.path} did not answer within {timeout:g} s "
            f"({PROVIDER_TIMEOUT_ENV}); it and its process group were killed"
        ) from None
    except BaseException:
        _kill_group(process)
        raise
    return CommandResult(process.returncode, bytes(exchange.stdout), bytes(exchange.stderr), exchange.stderr_truncated)


def _host_port(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or "/" in target:
        raise ProviderCallError(f"insecure-skip-verify needs a host:port target, not {target!r}")
    return host.strip("[]"), int(port)


def _peer_certificate(target: str, timeout: float) -> tuple[bytes, str]:
    """Fetch the server's certificate without verifying it; return its PEM and a name it is valid for."""
    import socket
    import ssl

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    host, port = _host_port(target)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as err:
        raise ProviderCallError(f"Error from grpc method: could not reach {target} over TLS: {err}") from None
    if not der:
        raise ProviderCallError(f"Error from grpc method: {target} presented no certificate")
    certificate = x509.load_der_x509_certificate(der)
    name = host
    with contextlib.suppress(x509.ExtensionNotFound):
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = names.get_values_for_type(x509.DNSName)
        if dns:
            name = dns[0]
    if name == host:
        common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if common:
            name = str(common[0].value)
    return ssl.DER_cert_to_PEM_cert(der).encode("ascii"), name


def _import_grpc() -> Any:
    """Import grpc with its C-core logging off unless GRPC_VERBOSITY asks: stderr is the error report."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        import grpc
    except ImportError:
        raise MissingBackendError(
            "key provider over gRPC: grpcio is not installed (pip install 'ctd-decoder[grpc]')"
        ) from None
    return grpc


def _channel(target: str, tls: GrpcTls | None, timeout: float) -> Any:
    grpc = _import_grpc()

    if tls is None:
        return grpc.insecure_channel(target)
    from . import tls as certificates

    client = certificates.client_certificate(tls)
    key, cert = client if client is not None else (None, None)
    options: list[tuple[str, str]] = []
    server_name = tls.server_name
    if tls.insecure_skip_verify:
        root, peer_name = _peer_certificate(target, timeout)
        server_name = peer_name
    else:
        root = certificates.root_certificates(tls)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    credentials = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)
    return grpc.secure_channel(target, credentials, options=options)


def _codec() -> tuple[Any, Any]:
    """Return (serialize request bytes, parse response bytes) built on the generated messages."""
    from . import keyprovider_pb2 as pb

    def serialize(data: bytes) -> bytes:
        return pb.keyProviderKeyWrapProtocolInput(KeyProviderKeyWrapProtocolInput=data).SerializeToString()

    def parse(message: bytes) -> bytes:
        return pb.keyProviderKeyWrapProtocolOutput.FromString(message).KeyProviderKeyWrapProtocolOutput

    return serialize, parse


def call_grpc(target: str, tls: GrpcTls | None, method: str, request: bytes, timeout: float) -> bytes:
    """Call ``/keyprovider.KeyProviderService/<method>`` with the JSON ``request``; return the JSON answer."""
    grpc = _import_grpc()
    serialize, parse = _codec()
    deadline = time.monotonic() + timeout
    channel = _channel(target, tls, timeout)
    try:
        stub = channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=serialize, response_deserializer=parse)
        response = stub(request, timeout=max(deadline - time.monotonic(), 0.001))
    except grpc.RpcError as err:
        code = err.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise ProviderTimeout(
                f"key provider at {target} did not answer {method} within {timeout:g} s ({PROVIDER_TIMEOUT_ENV})"
            ) from None
        name = code.name.title().replace("_", "") if code is not None else "Unknown"
        raise ProviderRpcError(name, str(err.details() or "")) from None
    finally:
        channel.close()
    output: bytes = response
    return output


def check_grpc_connection(target: str, tls: GrpcTls | None, timeout: float) -> None:
    """Connect to a gRPC provider (TLS handshake included) without calling it; raise ProviderCallError if not."""
    grpc = _import_grpc()
    channel = _channel(target, tls, timeout)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise ProviderCallError(f"could not connect to {target} within {timeout:g} s") from None
    finally:
        channel.close()
