"""The PKCS#11 module policy: where modules are searched for and which ones may be loaded.

The policy comes from the ``pkcs11-config`` parameter (YAML ``{module-directories: [...],
allowed-module-paths: [...]}``, what ctr-enc puts in the payload) or, when that is absent, from the
user configuration, read only when a PKCS#11 key is actually used:

1. ``OCICRYPT_CONFIG=internal``: built-in distribution directories for both lists;
2. the file named by ``OCICRYPT_CONFIG``;
3. ``$XDG_CONFIG_HOME/ocicrypt.conf``;
4. ``$HOME/.config/ocicrypt.conf``;
5. ``/etc/ocicrypt.conf`` (an absolute path: upstream looks for the relative ``etc/ocicrypt.conf``,
   which only works when the current directory is ``/``).

The first of 2-5 that exists is used; these files hold the two lists under a top-level ``pkcs11:`` map.
An entry of ``allowed-module-paths`` is either an exact file name or a directory ending in ``/`` whose
direct children are allowed. Unlike upstream, an empty ``allowed-module-paths`` allows nothing.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

from ...boundedfile import read_bounded
from ...errors import FileTooLargeError, UnwrapError
from ...spec import OCICRYPT_CONFIG_ENV

CONFIG_FILE = "ocicrypt.conf"
SYSTEM_CONFIG = "/etc/ocicrypt.conf"
MAX_CONFIG_SIZE = 1 << 20

_DEFAULT_DIRECTORIES = ("/usr/lib64/pkcs11/", "/usr/lib/pkcs11/", "/usr/local/lib/pkcs11/", "/usr/lib/softhsm/")
_DEBIAN_ARCHES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "ppc64le": "powerpc64le",
    "s390x": "s390x",
}


class Pkcs11ConfigError(UnwrapError):
    """The PKCS#11 module policy cannot be found or parsed."""


@dataclass
class Pkcs11Config:
    """Module search directories and allowed module paths, and where they came from."""

    module_directories: list[str] = field(default_factory=list)
    allowed_module_paths: list[str] = field(default_factory=list)
    source: str = "the pkcs11-config parameter"

    def is_allowed(self, path: str) -> bool:
        """Tell whether the module file ``path`` (absolute) may be loaded."""
        normalized = os.path.normpath(path)
        for allowed in self.allowed_module_paths:
            if not allowed:
                continue
            if allowed.endswith("/"):
                directory = os.path.normpath(allowed)
                if os.path.dirname(normalized) == directory:
                    return True
            elif os.path.normpath(allowed) == normalized:
                return True
        return False

    def describe(self) -> str:
        """Name the policy's source and its allowed paths for error messages."""
        allowed = ", ".join(self.allowed_module_paths) or "none"
        return f"allowed-module-paths from {self.source}: {allowed}"


def default_module_directories() -> list[str]:
    """Return the built-in module directories (``OCICRYPT_CONFIG=internal``)."""
    directories = list(_DEFAULT_DIRECTORIES)
    arch = _DEBIAN_ARCHES.get(platform.machine().lower())
    if arch is None and platform.machine().startswith("arm"):
        arch = "arm"
    if arch is not None:
        directories.append(f"/usr/lib/{arch}-linux-gnu/")
    return directories


def _string_list(value: Any, what: str, source: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Pkcs11ConfigError(f"{what} in {source} is not a list of strings")
    return list(value)


def _yaml_mapping(data: bytes, source: str) -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as err:
        raise Pkcs11ConfigError(f"Could not parse Pkcs11Config from {source}: {_first_line(err)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise Pkcs11ConfigError(f"Could not parse Pkcs11Config from {source}: not a YAML mapping")
    return document


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _from_mapping(mapping: dict[str, Any], source: str) -> Pkcs11Config:
    return Pkcs11Config(
        _string_list(mapping.get("module-directories"), "module-directories", source),
        _string_list(mapping.get("allowed-module-paths"), "allowed-module-paths", source),
        source,
    )


def parse_parameter(data: bytes) -> Pkcs11Config:
    """Parse a ``pkcs11-config`` parameter (the two lists at the top level)."""
    return _from_mapping(_yaml_mapping(data, "the pkcs11-config parameter"), "the pkcs11-config parameter")


def parse_user_config(data: bytes, source: str) -> Pkcs11Config:
    """Parse an ``ocicrypt.conf`` file (the two lists under ``pkcs11:``)."""
    mapping = _yaml_mapping(data, source)
    section = mapping.get("pkcs11")
    if section is None:
        return Pkcs11Config(source=source)
    if not isinstance(section, dict):
        raise Pkcs11ConfigError(f"Could not parse Pkcs11Config from {source}: pkcs11 is not a mapping")
    return _from_mapping(section, source)


def candidate_files(environ: dict[str, str] | None = None) -> list[str]:
    """Return the user config files looked at, in order."""
    env = os.environ if environ is None else environ
    candidates = []
    if env.get(OCICRYPT_CONFIG_ENV):
        candidates.append(env[OCICRYPT_CONFIG_ENV])
    if env.get("XDG_CONFIG_HOME"):
        candidates.append(os.path.join(env["XDG_CONFIG_HOME"], CONFIG_FILE))
    if env.get("HOME"):
        candidates.append(os.path.join(env["HOME"], ".config", CONFIG_FILE))
    candidates.append(SYSTEM_CONFIG)
    return candidates


def _read_config_file(path: str) -> bytes | None:
    try:
        return read_bounded(path, MAX_CONFIG_SIZE)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise Pkcs11ConfigError(f"cannot read ocicrypt config file {path}: {err.strerror}") from None
    except FileTooLargeError:
        raise Pkcs11ConfigError(f"ocicrypt config file {path} is larger than {MAX_CONFIG_SIZE} bytes") from None


def load_user_config(environ: dict[str, str] | None = None) -> Pkcs11Config:
    """Load the user's policy as described in the module docstring; raise if none is found."""
    env = os.environ if environ is None else environ
    if env.get(OCICRYPT_CONFIG_ENV) == "internal":
        directories = default_module_directories()
        return Pkcs11Config(directories, list(directories), f"the built-in defaults ({OCICRYPT_CONFIG_ENV}=internal)")
    candidates = candidate_files(dict(env))
    for path in candidates:
        data = _read_config_file(path)
        if data is not None:
            return parse_user_config(data, f"ocicrypt config file {path}")
    raise Pkcs11ConfigError(
        f"No ocicrypt config file was found (looked for {', '.join(candidates)}; set {OCICRYPT_CONFIG_ENV} to a file "
        f"with pkcs11 module-directories and allowed-module-paths, or to 'internal')"
    )


def config_for(parameters: list[bytes]) -> Pkcs11Config:
    """Return the policy from the first non-empty ``pkcs11-config`` entry, else the user config."""
    for data in parameters:
        if data:
            return parse_parameter(data)
    return load_user_config()
