"""``ocicrypt node install | uninstall | status``: the steps, in order, over the other modules."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from . import imports_edit, keysync
from .bundle import check_bundle, install_bundle
from .detect import Plan, imported, plan
from .dropin import dropin_toml, template_text
from .fsops import atomic_write, make_dirs, remove_empty_dirs, sha256_bytes, sha256_file
from .hostexec import HostExec
from .ledger import ConfigEdit, InstallLedger, read_ledger, remove_ledger, write_ledger
from .paths import (
    DECODER,
    INSTALL_LEDGER,
    KEYPROVIDER_CONFIG,
    KEYS_DIR,
    KEYS_LEDGER,
    OCICRYPT_DIR,
    OCICRYPT_TOOL,
    Flavour,
    HostLayout,
)

Say = Callable[[str], None]


class InstallError(ValueError):
    """The install cannot go on without risking the host's configuration (one line)."""


@dataclass(frozen=True)
class Options:
    """What ``install`` and ``uninstall`` need to know."""

    layout: HostLayout
    host_exec: HostExec
    flavour: Flavour | None = None
    bundle: str | None = None
    secret_dir: str | None = None
    restart: bool = True
    doctor: bool = True


def _plan_from(ledger: InstallLedger) -> Plan:
    """The plan of an earlier install: a repeated install keeps it (its own edit now imports the drop-in)."""
    return Plan(Flavour(ledger.flavour), ledger.strategy, ledger.config_version, ledger.config, ledger.target)


def _config_text(found: Plan, layout: HostLayout) -> str:
    decoder, keys, keyprovider = (layout.on_host(p) for p in (DECODER, KEYS_DIR, KEYPROVIDER_CONFIG))
    if found.strategy == "template":
        return template_text(found.config_version, decoder, keys, keyprovider)
    return dropin_toml(found.config_version, decoder, keys, keyprovider)


def _check_owned(layout: HostLayout, host_path: str, old: InstallLedger | None) -> None:
    current = sha256_file(layout.local(host_path))
    if current is not None and (old is None or old.files.get(host_path) != current):
        raise InstallError(f"{host_path} exists and was not written by ocicrypt node: move it away first")


def _write_owned(
    layout: HostLayout, host_path: str, data: bytes, old: InstallLedger | None, new: InstallLedger
) -> bool:
    """Write a file the installer owns; refuse to replace one it did not write. Return whether it changed."""
    _check_owned(layout, host_path, old)
    local = layout.local(host_path)
    current = sha256_file(local)
    make_dirs(os.path.dirname(local), 0o755, new.dirs, os.path.dirname(host_path))
    digest = sha256_bytes(data)
    new.files[host_path] = digest
    if current == digest:
        return False
    atomic_write(local, data, 0o644)
    return True


def _edit_imports(layout: HostLayout, found: Plan, old: InstallLedger | None, new: InstallLedger) -> bool:
    """Add the drop-in to the host config's ``imports`` unless it is there; return whether it changed."""
    local = layout.local(found.config)
    with open(local, "rb") as handle:
        raw = handle.read()
    if old is not None and old.config_edit is not None and sha256_bytes(raw) == old.config_edit.written_sha256:
        new.config_edit = old.config_edit
        return False
    import tomllib

    if imported(tomllib.loads(raw.decode()), found.target, layout):
        new.config_edit = old.config_edit if old else None
        return False
    insertions = imports_edit.plan_insertions(raw.decode(), layout.on_host(found.target))
    edited = imports_edit.apply(raw.decode(), insertions).encode()
    atomic_write(local, edited, os.stat(local).st_mode & 0o7777)
    new.config_edit = ConfigEdit(found.config, insertions, sha256_bytes(edited))
    return True


def install(options: Options, say: Say) -> int:
    """Install (or bring up to date) the decoder on the host; return doctor's exit status (0: healthy)."""
    layout = options.layout
    old = read_ledger(layout.local(INSTALL_LEDGER))
    found = _plan_from(old) if old else plan(layout, options.flavour)
    new = InstallLedger(
        found.flavour.value,
        found.strategy,
        found.config_version,
        found.config,
        found.target,
        dirs=list(old.dirs) if old else [],
    )
    bundle = options.bundle
    if bundle is None:
        raise InstallError("no bundle to install: pass --bundle DIR (the node image runs from its own)")
    check_bundle(layout, bundle, old)
    config_data = _config_text(found, layout).encode()
    _check_owned(layout, found.target, old)
    if found.strategy == "create":
        _check_owned(layout, found.config, old)
    say(f"{found.flavour.value}: config version {found.config_version}, strategy {found.strategy} ({found.target})")
    changed: dict[str, bool] = {}
    try:
        make_dirs(layout.local(OCICRYPT_DIR), 0o700, new.dirs, OCICRYPT_DIR)
        changed["bundle"] = install_bundle(layout, bundle, old, new)
        changed["config"] = _write_owned(layout, found.target, config_data, old, new)
        if found.strategy == "create":
            main = f"version = 2\nimports = [{json.dumps(layout.on_host(found.target))}]\n"
            changed["config"] |= _write_owned(layout, found.config, (imports_edit.MARK + main).encode(), old, new)
        elif found.strategy == "imports":
            changed["config"] |= _edit_imports(layout, found, old, new)
    finally:  # also after a failure part-way: uninstall then takes back what was written
        if os.path.isdir(layout.local(OCICRYPT_DIR)):
            write_ledger(layout.local(INSTALL_LEDGER), new)
    if options.secret_dir is not None:
        _, files = keysync.read_secret_volume(options.secret_dir)
        for line in keysync.sync(layout, files).lines():
            say(line)
    for what, did in changed.items():
        say(f"{what}: {'updated' if did else 'unchanged'}")
    if changed["config"] and options.restart:
        result = options.host_exec.restart(found.units)
        say(f"restart {' '.join(found.units)}: exit {result.status}")
        if result.status != 0:
            say(result.output.rstrip())
            return 1
    elif not changed["config"]:
        say("no restart: containerd's configuration is unchanged")
    if not options.doctor:
        return 0
    return run_doctor(options, found, say)


def run_doctor(options: Options, found: Plan, say: Say) -> int:
    """Run the installed ``ocicrypt doctor`` on the host and pass its verdict on."""
    layout = options.layout
    argv = [layout.on_host(OCICRYPT_TOOL), "doctor", "--containerd-config", layout.on_host(found.config)]
    result = options.host_exec.run(argv)
    for line in result.output.rstrip().splitlines():
        say(f"doctor: {line}")
    say(f"doctor: exit {result.status} ({'healthy' if result.status == 0 else 'see above'})")
    return 0 if result.status == 0 else 1


def uninstall(options: Options, say: Say) -> int:
    """Remove exactly what ``install`` and the key syncer wrote; restore the host config's bytes."""
    layout = options.layout
    if os.path.exists(layout.local(KEYS_LEDGER)):
        for line in keysync.remove_all(layout).lines():
            say(line)
    old = read_ledger(layout.local(INSTALL_LEDGER))
    if old is None:
        say("nothing to uninstall: no ledger of an install on this host")
        return 0
    config_changed = False
    if old.config_edit is not None:
        edit = old.config_edit
        local = layout.local(edit.path)
        with open(local, "rb") as handle:
            raw = handle.read()
        try:
            restored = imports_edit.revert(raw.decode(), edit.insertions).encode()
        except imports_edit.EditError as err:
            raise InstallError(f"{edit.path}: {err}") from None
        atomic_write(local, restored, os.stat(local).st_mode & 0o7777)
        say(f"restored {edit.path}")
        config_changed = True
    kept: list[str] = []
    for host_path, digest in sorted(old.files.items()):
        local = layout.local(host_path)
        current = sha256_file(local)
        if current == digest:
            os.unlink(local)
            config_changed |= host_path in (old.target, old.config)
        elif current is not None:
            kept.append(host_path)
    for host_path, target in sorted(old.links.items()):
        local = layout.local(host_path)
        if os.path.islink(local) and os.readlink(local) == target:
            os.unlink(local)
    for host_path in kept:
        say(f"left in place (changed since the install): {host_path}")
    remove_ledger(layout.local(INSTALL_LEDGER))
    remove_empty_dirs([layout.local(d) for d in old.dirs])
    say(f"removed {len(old.files) - len(kept)} files and {len(old.links)} links")
    if config_changed and options.restart:
        found = _plan_from(old)
        result = options.host_exec.restart(found.units)
        say(f"restart {' '.join(found.units)}: exit {result.status}")
        if result.status != 0:
            say(result.output.rstrip())
            return 1
    return 1 if kept else 0


def status(layout: HostLayout, flavour: Flavour | None, say: Say) -> int:
    """Report what is installed and whether it is intact; 0 installed and intact, 1 otherwise."""
    old = read_ledger(layout.local(INSTALL_LEDGER))
    if old is None:
        found = plan(layout, flavour)
        say(f"not installed; install would use strategy {found.strategy} ({found.target})")
        return 1
    drifted = [p for p, d in sorted(old.files.items()) if sha256_file(layout.local(p)) != d]
    drifted += [p for p, t in sorted(old.links.items()) if not os.path.islink(layout.local(p))]
    say(f"installed: {old.flavour}, strategy {old.strategy}, config version {old.config_version}")
    say(f"{len(old.files)} files, {len(old.links)} links written by the installer")
    if old.config_edit is not None:
        say(f"imports edit in {old.config_edit.path}")
    keys = keysync.KeysLedger.read(layout.local(KEYS_LEDGER))
    say(f"{len(keys.files)} key files synced from the Secret")
    for path in drifted:
        say(f"changed or missing since the install: {path}")
    return 1 if drifted else 0
