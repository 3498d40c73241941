"""The containerd checks: the config file and version, the stream processors in force, and the CRI
settings that decide whether containerd hands the processors a decryption payload."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from ...ocicrypt import spec
from . import containerd_config as cc
from . import install_paths
from .process import ContainerdProcess, Environment, containerd_environment, process_for_config
from .report import Report

GZIP = spec.TAR_GZIP_ENCRYPTED
TAR = spec.TAR_ENCRYPTED
ZSTD = spec.TAR_ZSTD_ENCRYPTED

Version = tuple[int, int, int]
_VERSION = re.compile(r"(?<![\w.])v?(\d+)\.(\d+)\.(\d+)")


@dataclass
class Decoder:
    """A stream processor that receives a payload for an encrypted media type: what the decoder will see."""

    processor: cc.Processor
    keys_path: str | None
    environment: dict[str, str] | None  # containerd's environment plus the entry's env; None: unknown

    def env(self) -> dict[str, str]:
        """The decoder's environment as far as known (the entry's env at least)."""
        return {**(self.environment or {}), **self.processor.env_map()}


@dataclass
class Node:
    """What the containerd checks learned, for the keys, provider and image checks."""

    config: cc.ContainerdConfig | None
    decoders: dict[str, Decoder] = field(default_factory=dict)  # by encrypted media type

    def distinct_decoders(self) -> list[Decoder]:
        """The decoders with a distinct processor entry, in media-type order."""
        seen: list[Decoder] = []
        for decoder in self.decoders.values():
            if all(other.processor != decoder.processor for other in seen):
                seen.append(decoder)
        return seen


def short_media_type(media_type: str) -> str:
    """An encrypted layer media type without its common prefix (``tar+gzip+encrypted``)."""
    return media_type.removeprefix(spec.LAYER_MEDIA_TYPE_PREFIX)


def containerd_version(exe: str) -> tuple[int, int, int] | None:
    """Ask ``exe --version``; None if it cannot tell."""
    try:
        result = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(result.stdout.replace("/v2 ", " "))
    if result.returncode != 0 or match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _find_executable(explicit: str | None, process: ContainerdProcess | None) -> str | None:
    if explicit:
        return explicit
    if process is not None and os.path.exists(process.exe):
        return process.exe
    return shutil.which("containerd") or shutil.which("containerd", path="/usr/local/bin:/usr/bin:/usr/sbin")


def _check_version(report: Report, config: cc.ContainerdConfig, exe: str | None) -> int:
    version = containerd_version(exe) if exe else None
    inferred = 2 if config.version >= 3 else 1
    if version is None:
        what = f"{exe} does not say its version" if exe else "no containerd executable found"
        report.warning(
            "containerd.version",
            f"{what}; assuming containerd {inferred}.x from config version {config.version}",
            "install containerd or pass --containerd with the executable the node runs",
        )
        return inferred
    major = version[0]
    text = ".".join(str(part) for part in version)
    if major < 2 and config.version >= 3:
        report.error(
            "containerd.version",
            f"containerd {text} cannot read config version {config.version} (containerd 2.x syntax)",
            f"use the config version 2 form ({install_paths.detect().containerd_snippet(2)}) "
            "or upgrade containerd to 2.x",
        )
    elif major >= 2 and config.version < 2:
        report.warning(
            "containerd.version",
            f"containerd {text} with config version {config.version}: plugin names are migrated at start",
            "run `containerd config migrate` and use its version 3 output",
        )
    else:
        report.ok("containerd.version", f"containerd {text} ({exe}), config version {config.version}")
    return major


def _check_config(report: Report, path: str | None) -> cc.ContainerdConfig | None:
    try:
        config = cc.load(path)
    except cc.ConfigError as err:
        report.error("containerd.config", str(err), err.fix)
        return None
    if path is None:
        snippets = install_paths.detect()
        report.warning(
            "containerd.config",
            f"no config file ({cc.K3S_CONFIG} and /etc/containerd/config.toml are absent): "
            "containerd's built-in defaults apply",
            f"write /etc/containerd/config.toml from {snippets.containerd_snippet(2)} (containerd 1.x) or "
            f"{snippets.containerd_snippet(3)} (2.x), or pass --containerd-config FILE",
        )
    else:
        imported = f", imports {', '.join(config.imports)}" if config.imports else ""
        report.ok("containerd.config", f"read {path} (version {config.version}){imported}")
    if config.template:
        report.warning(
            "containerd.config",
            f"{path} is a k3s template: the settings of k3s's base template are not visible here",
            f"also run `ocicrypt doctor --containerd-config {cc.K3S_CONFIG}` on the rendered config",
        )
    return config


def _resolve_path(report: Report, processor: cc.Processor, environment: Environment, check: str) -> None:
    path = processor.path
    setting = f'[stream_processors."{processor.processor_id}"] path'
    if not path:
        report.error(check, f"{processor.processor_id} has no path", f"set {setting} to the decoder's absolute path")
        return
    if os.path.isabs(path):
        if not os.path.isfile(path):
            report.error(check, f"{path} does not exist", f"install the decoder there or set {setting} to where it is")
        elif not os.access(path, os.X_OK):
            report.error(check, f"{path} is not executable", f"chmod 755 {path}")
        else:
            report.ok(check, f"{processor.processor_id} runs {path}")
        return
    if "/" in path:
        report.warning(
            check, f"{path} is relative to containerd's working directory", f"set {setting} to an absolute path"
        )
        return
    if environment.values is None:
        here = shutil.which(path)
        seen = f"; this shell finds {here}" if here else ""
        report.warning(
            check,
            f"cannot tell whether containerd finds {path} on its PATH ({environment.source}){seen}",
            f"set {setting} to the decoder's absolute path, e.g. {install_paths.detect().decoder}",
        )
        return
    search = environment.values.get("PATH", "")
    found = shutil.which(path, path=search)
    if found is None:
        report.error(
            check,
            f"{path} is not on containerd's PATH ({search or 'empty'}; from {environment.source})",
            f"set {setting} to the decoder's absolute path, e.g. {install_paths.detect().decoder}",
        )
    else:
        report.ok(
            check, f"{processor.processor_id} runs {path}, found at {found} on containerd's PATH ({environment.source})"
        )


def _check_args(report: Report, processor: cc.Processor) -> str | None:
    from ...decoder.cold import UsageError, parse_command_line

    setting = f'[stream_processors."{processor.processor_id}"] args'
    check = "containerd.processor.args"
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # -h/-v make the decoder print its usage
            keys_path = parse_command_line(list(processor.args)).keys_path
    except UsageError as err:
        report.error(
            check,
            f"the decoder refuses {list(processor.args)}: {err}",
            f"set {setting} to ['--decryption-keys-path', '{cc.KEYS_PATH}']",
        )
        return None
    except SystemExit:
        report.error(
            check,
            f"{list(processor.args)} asks the decoder for help or its version, not a decryption",
            f"remove the flag from {setting}",
        )
        return None
    if keys_path is None:
        report.warning(
            check,
            f"{processor.processor_id} has no --decryption-keys-path: CRI pulls only use key providers",
            f"add '--decryption-keys-path', '{cc.KEYS_PATH}' to {setting}",
        )
    else:
        report.ok(check, f"{processor.processor_id} loads keys from {keys_path}")
    return keys_path


def _check_env(report: Report, processor: cc.Processor) -> None:
    malformed = [entry for entry in processor.env if "=" not in entry or entry.startswith("=")]
    if malformed:
        report.error(
            "containerd.processor.env",
            f"{processor.processor_id} env entries {malformed} are not NAME=VALUE",
            f'write each entry of [stream_processors."{processor.processor_id}"] env as "NAME=VALUE"',
        )


LAYER_TYPES = (spec.TAR, spec.TAR_GZIP, spec.TAR_ZSTD)
_TAR_LAYER = LAYER_TYPES[0]


def _fix_returns(processor: cc.Processor) -> str:
    wanted = GZIP if GZIP in processor.accepts else ZSTD
    return (
        f'set [stream_processors."{processor.processor_id}"] returns = "{wanted.removesuffix(spec.ENCRYPTED_SUFFIX)}"'
    )


def _returns_problem(processor: cc.Processor, media_type: str) -> str | None:
    """Why the processor's ``returns`` breaks unpacking of ``media_type`` layers, or None.

    containerd decompresses a returned ``+gzip`` or ``+zstd`` stream by its magic number (a plain tar
    passes through), but takes a returned plain ``tar`` as is.
    """
    if processor.returns not in LAYER_TYPES:
        return f"returns {processor.returns or 'nothing'}, which is not a layer media type containerd unpacks"
    if processor.returns == _TAR_LAYER and media_type != TAR:
        compressed = short_media_type(media_type)
        return f"returns {_TAR_LAYER}, so containerd would unpack the still-compressed {compressed} stream as tar"
    return None


def _check_media_type(report: Report, node: Node, media_type: str, environment: Environment) -> None:
    assert node.config is not None
    check = f"containerd.processor.{short_media_type(media_type)}"
    accepting = [p for p in node.config.processors.values() if media_type in p.accepts]
    if not accepting:
        processor_id = cc.PROCESSOR_TAR_GZIP if media_type == GZIP else cc.PROCESSOR_TAR
        status = report.error if media_type == GZIP else report.warning
        extra = f' and returns = "{ZSTD.removesuffix(spec.ENCRYPTED_SUFFIX)}"' if media_type == ZSTD else ""
        example = install_paths.detect().containerd_snippet(node.config.version)
        status(
            check,
            f"no stream processor accepts {media_type}: containerd cannot unpack such layers",
            f'add "{media_type}" to the accepts of [stream_processors."{processor_id}"]{extra} (as in {example})',
        )
        return
    if len(accepting) > 1:
        ids = ", ".join(p.processor_id for p in accepting)
        report.error(
            check,
            f"{ids} all accept {media_type}; containerd picks one of them at random",
            f"keep {media_type} in the accepts of one [stream_processors] entry only",
        )
        return
    processor = accepting[0]
    if processor.processor_id not in cc.PAYLOAD_IDS:
        fix_id = cc.PROCESSOR_TAR_GZIP if media_type == GZIP else cc.PROCESSOR_TAR
        report.error(
            check,
            f"{processor.processor_id} accepts {media_type} but gets no decryption payload from containerd "
            f"(only {', '.join(cc.PAYLOAD_IDS)} do; it fails with 'read payload: ...')",
            f'move "{media_type}" to the accepts of [stream_processors."{fix_id}"] and remove '
            f'[stream_processors."{processor.processor_id}"]',
        )
        return
    problem = _returns_problem(processor, media_type)
    if problem is not None:
        report.error(check, f"{processor.processor_id} {problem}", _fix_returns(processor))
        return
    report.ok(check, f"{processor.processor_id} ({processor.source}) decrypts {media_type}")
    existing = next((d for d in node.decoders.values() if d.processor == processor), None)
    if existing is not None:
        node.decoders[media_type] = existing
        return
    _resolve_path(report, processor, environment, "containerd.processor.path")
    keys_path = _check_args(report, processor)
    _check_env(report, processor)
    node.decoders[media_type] = Decoder(processor, keys_path, environment.values)


def _no_payload(report: Report, check: str, node: Node, why: str, fix: str) -> None:
    """CRI pulls get no payload because of ``why``: information while recovery works, an error when it cannot."""
    from .pull_path import recovery_blocker, turn_on_fix

    blocked = [
        (decoder, reason)
        for decoder in node.distinct_decoders()
        if (reason := recovery_blocker(list(decoder.processor.args), decoder.env(), decoder.keys_path)) is not None
    ]
    if blocked:
        ids = [decoder.processor.processor_id for decoder, _ in blocked]
        report.error(
            check,
            f"{why}: CRI pulls get no decryption payload and {blocked[0][1]} for {', '.join(ids)}; "
            "encrypted pulls fail with 'read payload: ...'",
            f"{turn_on_fix(ids)} {fix}",
        )
    else:
        report.ok(
            check,
            f"{why}: CRI pulls get no decryption payload; the decoder recovers each layer's descriptor from "
            "containerd's content store and decrypts with the node's keys (descriptor recovery)",
        )


def _check_cri(report: Report, config: cc.ContainerdConfig, major: int, version: Version | None, node: Node) -> None:
    from .pull_path import UPGRADE, local_pull_sends_no_payload

    images = cc.cri_images(config, major)
    payload = True
    if images.key_model != "node":
        payload = False
        _no_payload(
            report,
            "cri.key_model",
            node,
            f"key_model = {images.key_model!r}",
            f'set key_model = "node" in [{images.decryption_table}]',
        )
    else:
        how = "set" if images.key_model_set else "containerd's default"
        report.ok("cri.key_model", f'key_model = "node" ({how})')
    local = images.use_local_image_pull is None or images.use_local_image_pull
    if images.use_local_image_pull is None:
        pass
    elif images.use_local_image_pull:
        report.ok("cri.use_local_image_pull", "use_local_image_pull = true: CRI pulls pull locally")
    elif images.transfer_fallback is not None:
        local = True
        report.warning(
            "cri.use_local_image_pull",
            f"use_local_image_pull is false, but {images.transfer_fallback} makes containerd 2.x fall back to a "
            "local pull",
            f"set use_local_image_pull = true in [{images.table_name}] so the pull path does not hang on that setting",
        )
    elif config.template and not images.use_local_image_pull_set:
        report.warning(
            "cri.use_local_image_pull",
            "use_local_image_pull is not set in this template; k3s's base template may set it",
            f"check that the rendered {cc.K3S_CONFIG} sets use_local_image_pull = true",
        )
    else:
        payload = False
        _no_payload(
            report,
            "cri.use_local_image_pull",
            node,
            "use_local_image_pull = false: containerd 2.x pulls through the transfer service, which passes no "
            "decryption payload",
            f"set use_local_image_pull = true in [{images.table_name}] (with {UPGRADE})",
        )
    if local and major >= 2 and local_pull_sends_no_payload(version):
        payload = False
        text = ".".join(str(part) for part in version or ())
        _no_payload(
            report,
            "cri.pull_path",
            node,
            f"containerd {text}'s CRI local pull attaches no decryption payload (containerd#12705)",
            f"upgrade to {UPGRADE}",
        )
    elif payload:
        report.ok("cri.pull_path", "CRI pulls send the decoder a decryption payload (descriptor recovery not needed)")
    blocked = _recovery_blocked(node)
    if blocked is None:
        report.ok(
            "ctr.pull_path",
            "a plain `ctr images pull` sends no decryption payload; the decoder recovers the descriptors "
            "(descriptor recovery)",
        )
    else:
        report.warning(
            "ctr.pull_path",
            f"a plain `ctr images pull` sends no decryption payload and {blocked}: such pulls fail",
            "use `ctr-enc images pull --key ...` or pull through the CRI, or let descriptor recovery work",
        )


def _recovery_blocked(node: Node) -> str | None:
    from .pull_path import recovery_blocker

    for decoder in node.distinct_decoders():
        reason = recovery_blocker(list(decoder.processor.args), decoder.env(), decoder.keys_path)
        if reason is not None:
            return reason
    return None


def check_containerd(report: Report, config_path: str | None, executable: str | None) -> Node:
    """Run the containerd checks and return what the later checks need."""
    path = config_path if config_path is not None else cc.default_config_path()
    config = _check_config(report, path)
    if config is None:
        return Node(None)
    process = process_for_config(path)
    if process is not None:
        report.ok("containerd.process", f"containerd pid {process.pid} ({process.exe}) runs with this config")
    environment = containerd_environment(path, process)
    exe = _find_executable(executable, process)
    major = _check_version(report, config, exe)
    node = Node(config)
    for media_type in (GZIP, TAR, ZSTD):
        _check_media_type(report, node, media_type, environment)
    _check_cri(report, config, major, containerd_version(exe) if exe else None, node)
    return node
