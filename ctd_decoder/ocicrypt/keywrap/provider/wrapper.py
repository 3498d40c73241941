"""Key providers (``org.opencontainers.image.enc.keys.provider.<name>``): external programs or gRPC services.

Each provider named in ``OCICRYPT_KEYPROVIDER_CONFIG`` gets a wrapper (see
:mod:`ctd_decoder.ocicrypt.keywrap.provider.config`). The request is ocicrypt's JSON document::

    {"op": "keyunwrap", "keywrapparams": {"ec": null, "optsdata": null},
     "keyunwrapparams": {"dc": {"Parameters": {...}}, "annotation": "<b64 of the element>"}}

sent on stdin to a program (the answer is its stdout) or as the bytes field of a
``keyprovider.KeyProviderService/UnWrapKey`` call. The answer
``{"keyunwrapresults": {"optsdata": "<b64>"}}`` carries the private options; a missing or null
``optsdata`` means "no result" (the wrapper is skipped without error).

Environment:

``CTD_DECODER_PROVIDER_TIMEOUT``
    Seconds every provider call may take (default 30). A program still running then is killed
    with its whole process group and reaped; a gRPC call is cancelled by its deadline.
``CTD_DECODER_PROVIDER_SEND_ALL_KEYS``
    By default ``dc.Parameters`` holds only the provider's own entry (the ``<name>`` list that
    ``--key provider:<name>:<arg>`` sets), never the private keys and passwords from the keys
    directory or the payload. ``1`` sends every parameter, as the Go decoder does, for providers
    that need them.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ... import scope
from ...config import DecryptConfig, EncryptConfig, Parameters
from ...diagnostics import printable
from ...errors import OcicryptError, UnwrapError, WrapError
from ...gojson import b64decode, b64encode, member
from ...spec import KEYPROVIDER_CONFIG_ENV, PROVIDER_PREFIX, PROVIDER_SEND_ALL_ENV, PROVIDER_TIMEOUT_ENV
from ..base import KeyWrapperBase
from .config import ProviderSpec, configured_path, load_config
from .errors import ProviderCallError, ProviderRpcError
from .transport import call_grpc, run_command

DEFAULT_TIMEOUT = 30.0
STDERR_SHOWN = 400
_UNSUPPORTED = "Unsupported keyprovider invocation. Supported invocation methods are grpc and cmd"


def provider_timeout() -> float:
    """Return the per-call timeout in seconds from ``CTD_DECODER_PROVIDER_TIMEOUT`` (default 30)."""
    value = os.environ.get(PROVIDER_TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ProviderCallError(f"{PROVIDER_TIMEOUT_ENV}={value!r} is not a positive number of seconds")
    return seconds


def send_all_keys() -> bool:
    """Tell whether ``CTD_DECODER_PROVIDER_SEND_ALL_KEYS`` asks for Go's send-everything behaviour."""
    return os.environ.get(PROVIDER_SEND_ALL_ENV, "").strip().lower() in ("1", "true", "yes")


def _encode_parameters(parameters: Parameters) -> dict[str, list[str | None]]:
    return {
        name: [None if value is None else b64encode(value) for value in values] for name, values in parameters.items()
    }


def _decode_response(data: bytes, origin: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise ProviderCallError(
            f"Error while unmarshalling {origin} output: {type(err).__name__} ({len(data)} bytes, not shown)"
        ) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ProviderCallError(f"Error while unmarshalling {origin} output: not a JSON object")
    return document


def _result_bytes(document: dict[str, Any], section: str, name: str, origin: str) -> bytes | None:
    results = member(document, section)
    if results is None:
        return None
    if not isinstance(results, dict):
        raise ProviderCallError(f"Error while unmarshalling {origin} output: {section} is not a JSON object")
    value = member(results, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProviderCallError(f"Error while unmarshalling {origin} output: {section}.{name} is not a string")
    try:
        return b64decode(value, f"{section}.{name}") or None
    except ValueError as err:
        raise ProviderCallError(f"Error while unmarshalling {origin} output: {err}") from None


def _redacted(text: str, sent: Parameters) -> str:
    """Replace every parameter value in ``text`` (as sent in base64, or as text) by ``[redacted]``."""
    for values in sent.values():
        for value in values:
            if not value:
                continue
            for form in (b64encode(value), value.decode("utf-8", "replace").strip()):
                if len(form) >= 3:
                    text = text.replace(form, "[redacted]")
    return text


class KeyProviderWrapper(KeyWrapperBase):
    """The ``provider.<name>`` scheme for one configured provider; it needs no private keys of ours."""

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.scheme = PROVIDER_PREFIX + spec.name

    def _parameters(self, parameters: Parameters) -> Parameters:
        if send_all_keys():
            return parameters
        return {name: values for name, values in parameters.items() if name == self.spec.name}

    def _origin(self) -> str:
        return "binary executable command" if self.spec.command is not None else "grpc method"

    def _call(self, method: str, request: dict[str, Any], sent: Parameters) -> dict[str, Any]:
        """Send ``request`` to the provider and return its decoded JSON answer.

        ``sent`` are the parameters the request carries: a provider's stderr (a gRPC provider's error
        details) could echo them, so it is shown with their values redacted, and not at all if every
        parameter (private keys) was sent.
        """
        data = json.dumps(request, separators=(",", ":")).encode()
        timeout = provider_timeout()

        def shown(text: str, size: int) -> str:
            if send_all_keys():
                return f"({size} bytes not shown: the request carried every key)"
            return printable(_redacted(text, sent), STDERR_SHOWN)

        scope.spend(scope.PROCESS_RUN, f"calling key provider {self.spec.name}")
        command = self.spec.command
        if command is not None:
            result = run_command(command, data, timeout)
            if result.returncode != 0:
                status = f"exit status {result.returncode}" if result.returncode > 0 else f"signal {-result.returncode}"
                stderr = shown(result.stderr_text(), len(result.stderr))
                raise ProviderCallError(f"Error while running command: {command.path}. stderr: {stderr}: {status}")
            return _decode_response(result.stdout, self._origin())
        if self.spec.grpc:
            try:
                answer = call_grpc(self.spec.grpc, self.spec.grpc_tls, method, data, timeout)
            except ProviderRpcError as err:
                details = shown(err.details, len(err.details.encode()))
                raise ProviderCallError(f"{err} desc = {details}") from None
            return _decode_response(answer, self._origin())
        raise ProviderCallError(_UNSUPPORTED)

    def unwrap_key(self, dc: DecryptConfig, wrapped: bytes) -> bytes | None:
        """Ask the provider for the private options; None when it answers without any."""
        parameters = self._parameters(dc.parameters)
        request = {
            "op": "keyunwrap",
            "keywrapparams": {"ec": None, "optsdata": None},
            "keyunwrapparams": {
                "dc": {"Parameters": _encode_parameters(parameters)},
                "annotation": b64encode(wrapped),
            },
        }
        try:
            answer = self._call("UnWrapKey", request, parameters)
            return _result_bytes(answer, "keyunwrapresults", "optsdata", self._origin())
        except OcicryptError as err:
            raise UnwrapError(str(err)) from None

    def wrap_keys(self, ec: EncryptConfig, opts: bytes) -> bytes | None:
        """Ask the provider to wrap ``opts``; None unless ``ec`` has a ``<name>`` parameter."""
        if self.spec.name not in ec.parameters:
            return None
        request = {
            "op": "keywrap",
            "keywrapparams": {
                "ec": {
                    "Parameters": _encode_parameters(self._parameters(ec.parameters)),
                    "DecryptConfig": {"Parameters": None},
                },
                "optsdata": b64encode(opts),
            },
            "keyunwrapparams": {"dc": None, "annotation": None},
        }
        kind = "command" if self.spec.command is not None else "grpc"
        try:
            answer = self._call("WrapKey", request, {**self._parameters(ec.parameters), "optsdata": [opts]})
            return _result_bytes(answer, "keywrapresults", "annotation", self._origin())
        except OcicryptError as err:
            raise WrapError(f"error while retrieving keyprovider protocol {kind} output: {err}") from None


class UnavailableProviderWrapper(KeyWrapperBase):
    """A ``provider.<name>`` annotation while the provider configuration itself is unusable.

    Always tried (no key parameter), so that the reason shows up in the diagnostics.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.scheme = PROVIDER_PREFIX + name
        self.reason = reason

    def unwrap_key(self, dc: DecryptConfig, wrapped: bytes) -> bytes | None:
        """Explain why no provider could be asked."""
        raise UnwrapError(self.reason)

    def wrap_keys(self, ec: EncryptConfig, opts: bytes) -> bytes | None:
        """Explain why no provider could be asked."""
        raise WrapError(self.reason)


def provider_wrapper(name: str) -> KeyProviderWrapper | UnavailableProviderWrapper:
    """Return the wrapper for provider ``name``, or one that explains why it cannot be used."""
    path = configured_path()
    if path is None:
        return UnavailableProviderWrapper(
            name,
            f"{KEYPROVIDER_CONFIG_ENV} is not set, so no key provider is configured (for ctd-decoder: containerd "
            f"starts the stream processor with its own environment plus the processor's env = [...] in containerd's "
            f'config, which must carry "{KEYPROVIDER_CONFIG_ENV}=/path/to/the/keyprovider.conf")',
        )
    config = load_config(path)
    if config.error is not None:
        return UnavailableProviderWrapper(name, config.error)
    spec = config.providers.get(name)
    if spec is None:
        configured = ", ".join(sorted(config.providers)) or "none"
        return UnavailableProviderWrapper(
            name, f"no key provider of that name in {KEYPROVIDER_CONFIG_ENV} file {path} (it configures: {configured})"
        )
    return KeyProviderWrapper(spec)
