"""Reading containerd's config.toml the way containerd does: imports, built-in stream processors,
config versions 1 to 4 and the CRI settings that decide whether a decryption payload is sent.

containerd merges the file over its built-in defaults: its two ocicrypt stream processors stay unless
the file redefines the same IDs (``containerd config dump`` shows them), and on containerd 2.x a
version 1/2 file's CRI image settings are migrated to ``io.containerd.cri.v1.images``.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ...decoder.payload import PAYLOAD_PROCESSOR_IDS
from ...ocicrypt import spec
from .process import DEFAULT_CONFIG as DEFAULT_CONFIG
from .process import K3S_CONFIG as K3S_CONFIG

K3S_DIR = os.path.dirname(K3S_CONFIG)
K3S_TEMPLATES = (f"{K3S_DIR}/config-v3.toml.tmpl", f"{K3S_DIR}/config.toml.tmpl")

PROCESSOR_TAR, PROCESSOR_TAR_GZIP = PAYLOAD_PROCESSOR_IDS
# imgcrypt attaches the decryption payload under these two IDs only.
PAYLOAD_IDS = (PROCESSOR_TAR_GZIP, PROCESSOR_TAR)
KEYS_PATH = "/etc/containerd/ocicrypt/keys"
KEYPROVIDER_CONFIG = "/etc/containerd/ocicrypt/ocicrypt_keyprovider.conf"

CRI_V1 = "io.containerd.grpc.v1.cri"
CRI_IMAGES = "io.containerd.cri.v1.images"

_TEMPLATE_LINE = re.compile(r"^\s*\{\{.*\}\}\s*$")


class ConfigError(Exception):
    """The config file cannot be read or is not TOML; ``str()`` says why, ``fix`` what to do about it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


def _unreadable(path: str, err: OSError) -> ConfigError:
    """Why ``path`` cannot be read, with the fix for that reason (not the TOML syntax's)."""
    message = f"cannot read {path}: {err.strerror}"
    if isinstance(err, FileNotFoundError):
        fix = (
            f"name the file containerd reads with --containerd-config FILE (default {DEFAULT_CONFIG}, "
            f"else {K3S_CONFIG}), or create {path}"
        )
    elif isinstance(err, PermissionError):
        fix = f"run ocicrypt doctor as root, as containerd reads {path} as root"
    elif isinstance(err, IsADirectoryError):
        fix = f"name the config file, not the directory {path}, with --containerd-config FILE"
    else:
        fix = f"make {path} a readable regular file"
    return ConfigError(message, fix)


@dataclass(frozen=True)
class Processor:
    """One ``[stream_processors]`` entry in force, and where it came from."""

    processor_id: str
    accepts: tuple[str, ...]
    returns: str
    path: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    source: str

    def env_map(self) -> dict[str, str]:
        """The ``env`` entries as a mapping (entries without ``=`` are left out)."""
        values = {}
        for entry in self.env:
            name, sep, value = entry.partition("=")
            if sep and name:
                values[name] = value
        return values


def builtin_processors() -> dict[str, Processor]:
    """containerd's built-in ocicrypt entries (the same in 1.6 and 2.x)."""

    def entry(processor_id: str, media_type: str) -> Processor:
        return Processor(
            processor_id,
            (media_type + spec.ENCRYPTED_SUFFIX,),
            media_type,
            "ctd-decoder",
            ("--decryption-keys-path", KEYS_PATH),
            (f"{spec.KEYPROVIDER_CONFIG_ENV}={KEYPROVIDER_CONFIG}",),
            "containerd's built-in defaults",
        )

    return {
        PROCESSOR_TAR: entry(PROCESSOR_TAR, spec.TAR),
        PROCESSOR_TAR_GZIP: entry(PROCESSOR_TAR_GZIP, spec.TAR_GZIP),
    }


@dataclass
class ContainerdConfig:
    """The merged configuration: the main file (None: none, built-in defaults) and its imports."""

    path: str | None
    table: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    imports: list[str] = field(default_factory=list)
    processors: dict[str, Processor] = field(default_factory=builtin_processors)
    template: bool = False  # a k3s template: its base template's settings are not visible here

    def plugin(self, name: str) -> dict[str, Any]:
        """Return the table of plugin ``name`` (empty when absent)."""
        plugins = self.table.get("plugins")
        value = plugins.get(name) if isinstance(plugins, dict) else None
        return value if isinstance(value, dict) else {}


def _strip_template(text: str, path: str) -> tuple[str, bool]:
    """Drop whole-line Go template actions (``{{ template "base" . }}``) from a k3s template."""
    if "{{" not in text:
        return text, False
    kept = []
    for line in text.splitlines():
        if _TEMPLATE_LINE.match(line):
            continue
        if "{{" in line:
            raise ConfigError(
                f"{path} uses template actions inside TOML lines, which the doctor cannot render",
                f"check the config k3s renders from it instead: --containerd-config {K3S_CONFIG}",
            )
        kept.append(line)
    return "\n".join(kept) + "\n", True


def _load_toml(path: str) -> tuple[dict[str, Any], bool]:
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except OSError as err:
        raise _unreadable(path, err) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path} is not UTF-8 text", f"save {path} as UTF-8 text; containerd refuses to start with it"
        ) from None
    text, template = _strip_template(text, path)
    try:
        return tomllib.loads(text), template
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(
            f"{path} is not valid TOML: {err}", "fix the file's TOML syntax; containerd refuses to start with it"
        ) from None


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return ()


def _processor(processor_id: str, value: Any, source: str) -> Processor:
    entry = value if isinstance(value, dict) else {}
    return Processor(
        processor_id,
        _strings(entry.get("accepts")),
        str(entry.get("returns", "")),
        str(entry.get("path", "")),
        _strings(entry.get("args")),
        _strings(entry.get("env")),
        source,
    )


def _version_of(table: dict[str, Any], path: str, template: bool) -> int:
    version = table.get("version")
    if isinstance(version, int):
        return version
    if template:  # the k3s base template sets it; the template's file name says which
        return 3 if os.path.basename(path).startswith("config-v3") else 2
    return 1


def _resolve_imports(parent: str, patterns: Any) -> list[str]:
    found: list[str] = []
    for pattern in _strings(patterns):
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(parent), pattern)
        found.extend(sorted(glob.glob(pattern)) if "*" in pattern else [os.path.normpath(pattern)])
    return found


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    """containerd's merge: plugin sections and stream processors replaced whole, the rest overridden."""
    for key, value in other.items():
        if key == "plugins" and isinstance(value, dict) and isinstance(into.get("plugins"), dict):
            into["plugins"].update(value)
        elif key == "imports":
            continue
        else:
            into[key] = value


def load(path: str | None) -> ContainerdConfig:
    """Read ``path`` and its imports; None gives containerd's built-in defaults."""
    config = ContainerdConfig(path)
    if path is None:
        return config
    table, config.template = _load_toml(path)
    config.table = dict(table)
    config.version = _version_of(table, path, config.template)
    sources = [(path, table)]
    pending = _resolve_imports(path, table.get("imports"))
    seen = {os.path.realpath(path)}
    while pending:
        imported = pending.pop(0)
        if os.path.realpath(imported) in seen:
            continue
        seen.add(os.path.realpath(imported))
        if not os.path.exists(imported):
            continue
        sub, _ = _load_toml(imported)
        config.imports.append(imported)
        _merge(config.table, sub)
        sources.append((imported, sub))
        pending.extend(_resolve_imports(imported, sub.get("imports")))
    for source, sub in sources:
        entries = sub.get("stream_processors")
        if isinstance(entries, dict):
            for processor_id, value in entries.items():
                config.processors[processor_id] = _processor(processor_id, value, source)
    return config


def default_config_path() -> str | None:
    """The config containerd reads when none is named: /etc/containerd's, else k3s's rendered one."""
    for candidate in (DEFAULT_CONFIG, K3S_CONFIG):
        if os.path.exists(candidate):
            return candidate
    return None


@dataclass(frozen=True)
class CriImages:
    """The CRI image settings that decide whether a payload reaches the processors."""

    table_name: str  # where the operator sets use_local_image_pull, for fixes
    decryption_table: str  # where the key_model in force is (or goes), for fixes
    key_model: str
    key_model_set: bool
    use_local_image_pull: bool | None  # None: containerd 1.x, no transfer service
    use_local_image_pull_set: bool
    transfer_fallback: str | None  # the setting that makes containerd 2.x pull locally anyway


# containerd 2.x falls back to a local pull (which does attach the payload) when one of these is set.
def _transfer_fallback(images: dict[str, Any]) -> str | None:
    registry = _table(images.get("registry"))
    checks = [
        ("disable_snapshot_annotations = false", images.get("disable_snapshot_annotations", True) is False),
        ("discard_unpacked_layers = true", images.get("discard_unpacked_layers", False) is True),
        ("registry.mirrors", bool(registry.get("mirrors"))),
        ("registry.configs", bool(registry.get("configs"))),
        ("registry.auths", bool(registry.get("auths"))),
        ("max_concurrent_downloads other than 3", images.get("max_concurrent_downloads", 3) != 3),
        ("image_pull_with_sync_fs = true", images.get("image_pull_with_sync_fs", False) is True),
    ]
    return next((name for name, present in checks if present), None)


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _v1_cri(config: ContainerdConfig) -> dict[str, Any]:
    return config.plugin("cri") if config.version < 2 else config.plugin(CRI_V1)


def cri_images(config: ContainerdConfig, major: int) -> CriImages:
    """Compute the effective CRI image settings for a containerd of ``major`` version."""
    if major < 2:
        cri = _v1_cri(config)
        decryption = _table(cri.get("image_decryption"))
        name = "plugins.cri" if config.version < 2 else f'plugins."{CRI_V1}"'
        return CriImages(
            name,
            f"{name}.image_decryption",
            str(decryption.get("key_model", "node")),
            "key_model" in decryption,
            None,
            False,
            None,
        )
    images = dict(config.plugin(CRI_IMAGES))
    decryption_table = f"plugins.'{CRI_IMAGES}'.image_decryption"
    if config.version < 3:  # containerd 2.x migrates these keys of the old CRI plugin
        cri = _v1_cri(config)
        if "image_decryption" in cri:
            decryption_table = f'plugins."{CRI_V1}".image_decryption'

        for key in ("registry", "image_decryption", "max_concurrent_downloads", "image_pull_with_sync_fs"):
            if key in cri:
                images[key] = cri[key]
        runtime = _table(cri.get("containerd"))
        for key in ("snapshotter", "disable_snapshot_annotations", "discard_unpacked_layers"):
            if key in runtime:
                images[key] = runtime[key]
    decryption = _table(images.get("image_decryption"))
    local = images.get("use_local_image_pull", False) is True
    return CriImages(
        f"plugins.'{CRI_IMAGES}'",
        decryption_table,
        str(decryption.get("key_model", "node")),
        "key_model" in decryption,
        local,
        "use_local_image_pull" in images,
        None if local else _transfer_fallback(images),
    )
