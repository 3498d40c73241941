"""The key-provider and PKCS#11 checks, in the environment the decoder gets from containerd.

Provider programs are looked up, gRPC endpoints are connected to (TLS included) but never asked to
wrap or unwrap; PKCS#11 keys are found on their token (module policy, module load, login) but not used.
"""

from __future__ import annotations

import os
import shutil

from ...ocicrypt import KeysDir, OcicryptError, Pkcs11Config, ProviderSpec, load_provider_config
from ...ocicrypt.spec import KEYPROVIDER_CONFIG_ENV, OCICRYPT_CONFIG_ENV, PKCS11_YAMLS
from .containerd_config import KEYPROVIDER_CONFIG
from .report import Report

GRPC_TIMEOUT = 5.0


def _env_fix(name: str, value: str) -> str:
    return f'add "{name}={value}" to the env of the ocicrypt [stream_processors] entries'


def _check_command(report: Report, spec: ProviderSpec, env: dict[str, str] | None) -> None:
    assert spec.command is not None
    check = f"providers.{spec.name}"
    path = spec.command.path
    where = f"key-providers.{spec.name}.cmd.path"
    if not path:
        report.error(check, f"{spec.name}: cmd has no path", f"set {where} to the provider's absolute path")
        return
    if "/" in path:
        found: str | None = path if os.path.isfile(path) and os.access(path, os.X_OK) else None
        searched = ""
    elif env is not None and "PATH" in env:
        found = shutil.which(path, path=env["PATH"])
        searched = f" on the decoder's PATH ({env['PATH']})"
    else:
        found = shutil.which(path)
        searched = " on this shell's PATH (containerd's is unknown)"
    if found is None:
        report.error(
            check,
            f"{spec.name}: provider program {path} not found or not executable{searched}",
            f"install it or set {where} to its absolute path",
        )
    else:
        report.ok(check, f"{spec.name}: provider program {found}")


def _check_grpc(report: Report, spec: ProviderSpec) -> None:
    from ...ocicrypt import check_provider_grpc_connection

    check = f"providers.{spec.name}"
    tls = spec.grpc_tls
    try:
        check_provider_grpc_connection(spec.grpc, tls, GRPC_TIMEOUT)
    except OcicryptError as err:
        fix = (
            f"check key-providers.{spec.name}.grpc-tls (files, server-name) and that the server at {spec.grpc} runs"
            if tls is not None
            else f"start the provider at {spec.grpc} or fix key-providers.{spec.name}.grpc"
        )
        report.error(check, f"{spec.name}: gRPC endpoint {spec.grpc}: {err}", fix)
        return
    security = "TLS" if tls is not None else "plaintext"
    report.ok(check, f"{spec.name}: gRPC endpoint {spec.grpc} accepts a {security} connection")


def check_providers(report: Report, env: dict[str, str]) -> None:
    """Check the key-provider config named by OCICRYPT_KEYPROVIDER_CONFIG in the decoder's ``env``."""
    check = "providers.config"
    path = env.get(KEYPROVIDER_CONFIG_ENV)
    if not path:
        if os.path.exists(KEYPROVIDER_CONFIG):
            report.warning(
                check,
                f"{KEYPROVIDER_CONFIG} exists but the decoder's environment does not name it",
                _env_fix(KEYPROVIDER_CONFIG_ENV, KEYPROVIDER_CONFIG),
            )
        else:
            report.ok(check, f"no key providers ({KEYPROVIDER_CONFIG_ENV} is not set)")
        return
    if not os.path.exists(path):
        if path == KEYPROVIDER_CONFIG:
            report.ok(check, f"no key providers ({path} does not exist)")
        else:
            report.warning(
                check,
                f"{KEYPROVIDER_CONFIG_ENV} names {path}, which does not exist: layers for key providers fail",
                f"create {path} or fix {KEYPROVIDER_CONFIG_ENV} in the processor env",
            )
        return
    config = load_provider_config(path)
    if config.error is not None:
        report.error(
            check,
            config.error,
            f'fix the JSON in {path}: {{"key-providers": {{"NAME": {{"cmd": {{"path": "/abs/program", "args": []}}}} '
            'or {"grpc": "host:port"}}}',
        )
        return
    names = ", ".join(sorted(config.providers)) or "none"
    report.ok(check, f"{path} parses; key providers: {names}")
    for spec in config.providers.values():
        if spec.command is not None:
            _check_command(report, spec, env)
        elif spec.grpc:
            _check_grpc(report, spec)
        else:
            report.error(
                f"providers.{spec.name}",
                f"{spec.name}: neither cmd nor grpc is set",
                f'give key-providers.{spec.name} a "cmd" or a "grpc" member',
            )


def check_pkcs11(report: Report, env: dict[str, str], keys_dir: KeysDir | None) -> None:
    """Check the PKCS#11 module policy and every PKCS#11 key file of the keys directory."""
    from ...ocicrypt import load_pkcs11_config

    entries = [entry for entry in (keys_dir.loaded if keys_dir else []) if entry.parameter == PKCS11_YAMLS]
    if not entries and not env.get(OCICRYPT_CONFIG_ENV):
        return
    try:
        config = load_pkcs11_config(env)
    except OcicryptError as err:
        report.error(
            "pkcs11.policy",
            str(err),
            f'write /etc/ocicrypt.conf with pkcs11 allowed-module-paths, or add "{OCICRYPT_CONFIG_ENV}=FILE" to the '
            "processor env",
        )
        return
    report.ok("pkcs11.policy", f"module policy: {config.describe()}")
    for entry in entries:
        _check_pkcs11_key(report, entry.path, config)


def _check_pkcs11_key(report: Report, path: str, config: Pkcs11Config) -> None:
    from ...ocicrypt import Pkcs11UriError, locate_pkcs11_private_key, parse_pkcs11_key_file

    check = "pkcs11.key"
    try:
        with open(path, "rb") as handle:
            key = parse_pkcs11_key_file(handle.read())
    except (OcicryptError, OSError) as err:
        report.error(check, f"{path}: {err}", f"fix the YAML key file {path}")
        return
    uri = key.uri.redacted()
    try:
        module = key.uri.find_module(config)
    except Pkcs11UriError as err:
        report.error(
            check,
            f"{path} ({uri}): {err}",
            f"install the module and list it in allowed-module-paths of {config.source}",
        )
        return
    try:
        locate_pkcs11_private_key(key, config)
    except OcicryptError as err:
        fix = (
            "add pin-value or pin-source to the key's pkcs11 URI"
            if "PIN" in str(err)
            else f"check the token, the PIN and the module env in {path}"
        )
        report.error(check, f"{path} ({uri}): {err}", fix)
        return
    report.ok(check, f"{path}: {uri} found on its token through {module}")
