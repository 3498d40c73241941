"""RFC 7512 ``pkcs11:`` URIs as ocicrypt uses them, and the search for the module they name.

``pkcs11:<path attributes separated by ;>?<query attributes separated by &>``; values are
percent-decoded (``+`` is a space, as in Go's ``url.QueryUnescape``). Path attributes used:
``slot-id``, ``token``, ``id`` (bytes, CKA_ID), ``object`` (CKA_LABEL), ``type``; query attributes:
``pin-value``, ``pin-source``, ``module-path``, ``module-name``. :meth:`Pkcs11Uri.redacted` is the
only form shown to operators: it never contains the PIN.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes, urlparse

from ...boundedfile import read_bounded
from ...errors import FileTooLargeError, UnwrapError
from .policy import Pkcs11Config

SCHEME = "pkcs11:"
REDACTED = "***"
MAX_PIN_FILE_SIZE = 4096

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LIBRARY_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_TYPES = {"", "public", "private", "cert", "secret-key", "data"}


class Pkcs11UriError(UnwrapError):
    """A ``pkcs11:`` URI is malformed or names something that cannot be used."""


def _unescape(value: str) -> bytes:
    if _BAD_ESCAPE.search(value):
        raise Pkcs11UriError(f"Malformed pkcs11 URI: invalid URL escape in {value!r}")
    return unquote_to_bytes(value.replace("+", " "))


def _split_attributes(text: str, separator: str, kind: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if not text:
        return pairs
    for part in text.split(separator):
        pieces = part.split("=")
        if len(pieces) != 2:
            raise Pkcs11UriError(f"Malformed pkcs11 URI: malformed {kind} attribute")
        if any(name == pieces[0] for name, _ in pairs):
            raise Pkcs11UriError(f"Malformed pkcs11 URI: duplicate {kind} attribute {pieces[0]}")
        pairs.append((pieces[0], pieces[1]))
    return pairs


@dataclass
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI; raw (still escaped) attribute values are kept for display."""

    path_raw: list[tuple[str, str]] = field(default_factory=list)
    query_raw: list[tuple[str, str]] = field(default_factory=list)
    path: dict[str, bytes] = field(default_factory=dict)
    query: dict[str, bytes] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """Return the decoded path or query attribute ``name`` as text, or None."""
        value = self.path.get(name, self.query.get(name))
        return None if value is None else value.decode("utf-8", "surrogateescape")

    def redacted(self) -> str:
        """Format the URI for messages with the PIN replaced by ``***``."""
        path = ";".join(f"{name}={value}" for name, value in self.path_raw)
        query = "&".join(f"{name}={REDACTED if name == 'pin-value' else value}" for name, value in self.query_raw)
        return SCHEME + path + (f"?{query}" if self.query_raw else "")

    def has_pin(self) -> bool:
        """Tell whether the URI carries a PIN (``pin-value`` or ``pin-source``)."""
        return "pin-value" in self.query or "pin-source" in self.query

    def pin(self) -> str | None:
        """Return the PIN from ``pin-value`` or the file named by ``pin-source`` (verbatim)."""
        if "pin-value" in self.query:
            return self.query["pin-value"].decode("utf-8", "surrogateescape")
        source = self.text("pin-source")
        if source is None:
            return None
        return _read_pin_source(source)

    def slot_id(self) -> int | None:
        """Return the ``slot-id`` attribute as a number, or None."""
        value = self.text("slot-id")
        if value is None:
            return None
        number = int(value)
        if not 0 <= number <= 0xFFFFFFFF:
            raise Pkcs11UriError(f"slot-id {number} is not between 0 and 2^32-1")
        return number

    def key_selector(self) -> tuple[bytes | None, str | None]:
        """Return the key's CKA_ID and CKA_LABEL (``id`` and ``object``); at least one is set."""
        key_id = self.path.get("id")
        label = self.text("object")
        if not key_id and not label:
            raise Pkcs11UriError("Neither 'id' nor 'object' attributes were found in pkcs11 URI")
        return key_id or None, label or None

    def find_module(self, config: Pkcs11Config) -> str:
        """Return the module file to load, checked against ``config`` before anything is loaded."""
        module_path = self.text("module-path")
        if module_path is not None:
            return _module_from_path(module_path, self.text("module-name"), config)
        module_name = self.text("module-name")
        if module_name is None:
            raise Pkcs11UriError("No module available in pkcs11 URI: module-name attribute is not set")
        return _search_module(config.module_directories, module_name, config, "module-directories")


def parse(uri: str) -> Pkcs11Uri:
    """Parse and validate a ``pkcs11:`` URI."""
    if not uri.startswith(SCHEME):
        raise Pkcs11UriError("Malformed pkcs11 URI: missing pkcs11: prefix")
    parts = uri[len(SCHEME) :].split("?")
    if len(parts) > 2:
        raise Pkcs11UriError("Malformed pkcs11 URI: too many query parts")
    result = Pkcs11Uri(_split_attributes(parts[0], ";", "path"))
    if len(parts) == 2:
        result.query_raw = _split_attributes(parts[1], "&", "query")
    result.path = {name: _unescape(value) for name, value in result.path_raw}
    result.query = {name: _unescape(value) for name, value in result.query_raw}
    _validate(result)
    return result


def _validate(uri: Pkcs11Uri) -> None:
    slot = uri.text("slot-id")
    if slot is not None and not re.fullmatch(r"[+-]?[0-9]+", slot):
        raise Pkcs11UriError(f"slot-id must be a number: {slot}")
    version = uri.text("library-version")
    if version is not None and not _LIBRARY_VERSION.match(version):
        raise Pkcs11UriError(f"Invalid format for library-version '{version}'")
    kind = uri.text("type")
    if kind is not None and kind not in _TYPES:
        raise Pkcs11UriError(f"Invalid type '{kind}'")
    if "pin-source" in uri.query and "pin-value" in uri.query:
        raise Pkcs11UriError("URI must not contain pin-source and pin-value")
    module_path = uri.text("module-path")
    if module_path is not None and not os.path.isabs(module_path):
        raise Pkcs11UriError(f"path {module_path} of module-path attribute must be absolute")


def _read_pin_source(source: str) -> str:
    parsed = urlparse(source)
    if parsed.scheme not in ("", "file"):
        raise Pkcs11UriError(f"PIN URI scheme {parsed.scheme} is not supported")
    path = parsed.path
    if not os.path.isabs(path):
        raise Pkcs11UriError(f"PIN URI path '{path}' is not absolute")
    try:
        data = read_bounded(path, MAX_PIN_FILE_SIZE)
    except OSError as err:
        raise Pkcs11UriError(f"Could not open PIN file {path}: {err.strerror}") from None
    except FileTooLargeError:
        raise Pkcs11UriError(f"PIN file {path} is larger than {MAX_PIN_FILE_SIZE} bytes") from None
    return data.decode("utf-8", "surrogateescape")


def _module_from_path(module_path: str, module_name: str | None, config: Pkcs11Config) -> str:
    try:
        info = os.stat(module_path)
    except OSError:
        raise Pkcs11UriError(f"module-path '{module_path}' is not accessible") from None
    if stat.S_ISREG(info.st_mode):
        if not config.is_allowed(module_path):
            raise Pkcs11UriError(f"module {module_path} is not allowed, so it was not loaded ({config.describe()})")
        return module_path
    if not stat.S_ISDIR(info.st_mode):
        raise Pkcs11UriError(f"module-path '{module_path}' points to an invalid file type")
    if module_name is None:
        raise Pkcs11UriError("No module available in pkcs11 URI: module-name attribute is not set")
    return _search_module([module_path], module_name, config, "module-path")


def _matches(file_name: str, module_name: str) -> bool:
    lower = file_name.lower()
    index = lower.find(module_name)
    if index < 0:
        return False
    end = index + len(module_name)
    return end == len(lower) or lower[end] == "."


def _search_module(directories: list[str], module_name: str, config: Pkcs11Config, where: str) -> str:
    wanted = module_name.lower()
    refused: list[str] = []
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if not _matches(name, wanted):
                continue
            candidate = os.path.join(directory, name)
            if config.is_allowed(candidate):
                return candidate
            refused.append(candidate)
    if refused:
        raise Pkcs11UriError(
            f"module {', '.join(refused)} matches module-name {module_name} but is not allowed, so it was not "
            f"loaded ({config.describe()})"
        )
    searched = ", ".join(directories) or "none"
    raise Pkcs11UriError(f"No module could be found: no file for module-name {module_name} in {where} ({searched})")
