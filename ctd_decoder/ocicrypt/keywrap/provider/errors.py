"""Errors of calling a key provider (shared by the transport and its TLS set-up)."""

from __future__ import annotations

from ...errors import OcicryptError


class ProviderCallError(OcicryptError):
    """A key provider could not be called or gave no usable answer."""


class ProviderTimeout(ProviderCallError):
    """A key provider did not answer before the deadline."""


class ProviderRpcError(ProviderCallError):
    """A gRPC provider answered with an error status.

    Its details are the provider's own words, which may echo the request (keys among it): they are
    kept apart from the message, for the caller to redact before showing them.
    """

    def __init__(self, code_name: str, details: str) -> None:
        super().__init__(f"Error from grpc method: rpc error: code = {code_name}")
        self.code_name = code_name
        self.details = details
