"""The key-provider configuration named by ``OCICRYPT_KEYPROVIDER_CONFIG`` (JSON).

::

    {"key-providers": {
       "mycmd":  {"cmd": {"path": "/usr/local/bin/prov", "args": ["--x"]}},
       "mygrpc": {"grpc": "localhost:50051",
                  "grpc-tls": {"root-ca-file": "...", "cert-file": "...", "key-file": "...",
                               "server-name": "...", "insecure-skip-verify": false}}}}

Member names match case-insensitively, as Go reads them. The file is read only when a layer carries
a ``provider.<name>`` annotation (or a provider is asked to wrap), and at most once per process.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any

from ...boundedfile import read_bounded
from ...errors import FileTooLargeError
from ...gojson import member
from ...spec import KEYPROVIDER_CONFIG_ENV

MAX_CONFIG_SIZE = 1 << 20


@dataclass(frozen=True)
class Command:
    """A provider program: ``path`` (looked up on PATH if it has no slash) and its arguments."""

    path: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class GrpcTls:
    """TLS settings of a gRPC provider."""

    root_ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class ProviderSpec:
    """One configured key provider."""

    name: str
    command: Command | None = None
    grpc: str = ""
    grpc_tls: GrpcTls | None = None


@dataclass
class ProviderConfig:
    """The parsed file, or why it cannot be used (``error``)."""

    source: str
    providers: dict[str, ProviderSpec] = field(default_factory=dict)
    error: str | None = None


class ConfigFormatError(ValueError):
    """The configuration is valid JSON but not of the expected shape."""


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigFormatError(f"{what} is not a string")
    return value


def _object(value: Any, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigFormatError(f"{what} is not a JSON object")
    return value


def _command(value: Any, name: str) -> Command | None:
    obj = _object(value, f"key-providers.{name}.cmd")
    if obj is None:
        return None
    args = member(obj, "args") or []
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ConfigFormatError(f"key-providers.{name}.cmd.args is not a list of strings")
    return Command(_string(member(obj, "path"), f"key-providers.{name}.cmd.path"), tuple(args))


def _tls(value: Any, name: str) -> GrpcTls | None:
    obj = _object(value, f"key-providers.{name}.grpc-tls")
    if obj is None:
        return None
    skip = member(obj, "insecure-skip-verify") or False
    if not isinstance(skip, bool):
        raise ConfigFormatError(f"key-providers.{name}.grpc-tls.insecure-skip-verify is not a boolean")
    where = f"key-providers.{name}.grpc-tls"
    return GrpcTls(
        _string(member(obj, "root-ca-file"), f"{where}.root-ca-file"),
        _string(member(obj, "cert-file"), f"{where}.cert-file"),
        _string(member(obj, "key-file"), f"{where}.key-file"),
        _string(member(obj, "server-name"), f"{where}.server-name"),
        skip,
    )


def _provider(name: str, value: Any) -> ProviderSpec:
    obj = _object(value, f"key-providers.{name}") or {}
    return ProviderSpec(
        name,
        _command(member(obj, "cmd"), name),
        _string(member(obj, "grpc"), f"key-providers.{name}.grpc"),
        _tls(member(obj, "grpc-tls"), name),
    )


def parse_config(data: bytes, source: str) -> ProviderConfig:
    """Parse the JSON text of a key-provider configuration."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        return ProviderConfig(source, error=f"Error while parsing keyprovider config file {source}: {err}")
    try:
        root = _object(document, "the configuration") or {}
        providers = _object(member(root, "key-providers"), "key-providers") or {}
        specs = {name: _provider(name, value) for name, value in providers.items()}
    except ConfigFormatError as err:
        return ProviderConfig(source, error=f"Error while parsing keyprovider config file {source}: {err}")
    return ProviderConfig(source, specs)


@functools.lru_cache(maxsize=8)
def load_config(path: str) -> ProviderConfig:
    """Read and parse the configuration file ``path`` (once per process)."""
    try:
        data = read_bounded(path, MAX_CONFIG_SIZE)
    except OSError as err:
        error = f"{KEYPROVIDER_CONFIG_ENV} names {path}, which cannot be read: {err.strerror}"
        return ProviderConfig(path, error=error)
    except FileTooLargeError:
        error = f"{KEYPROVIDER_CONFIG_ENV} file {path} is larger than {MAX_CONFIG_SIZE} bytes"
        return ProviderConfig(path, error=error)
    return parse_config(data, path)


def configured_path() -> str | None:
    """Return the configuration file named by ``OCICRYPT_KEYPROVIDER_CONFIG``, if set."""
    return os.environ.get(KEYPROVIDER_CONFIG_ENV) or None
