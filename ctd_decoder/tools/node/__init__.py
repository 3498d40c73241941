"""``ocicrypt node``: put the decoder on a Kubernetes or k3s node from a pod, keep its keys in step
with a Secret, and take it all off again (see deploy/kubernetes/ and the README's "Roll out to a
cluster")."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .paths import HOST_ROOT, Flavour

HELP = "install, uninstall or check the decoder on this node from its pod; sync keys from a Secret"


def register(subparsers: Any) -> None:
    """Add the ``node`` subcommand and its own subcommands."""
    parser = subparsers.add_parser("node", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    actions = parser.add_subparsers(dest="node_command", metavar="ACTION", required=True)

    def host_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--host-root", default=HOST_ROOT, help=f"where the host's directories are mounted (default {HOST_ROOT})"
        )
        sub.add_argument(
            "--host-prefix",
            default="",
            help="what the host calls --host-root ('' on a node; a test's temp dir standing in for a host)",
        )
        sub.add_argument(
            "--flavour", choices=[f.value for f in Flavour], help="default: k3s/RKE2 if found, else containerd"
        )

    def change_options(sub: argparse.ArgumentParser) -> None:
        from .hostexec import DEFAULT_HOST_EXEC

        sub.add_argument(
            "--host-exec",
            default=DEFAULT_HOST_EXEC,
            help=f"the prefix that runs a command on the host: systemctl and doctor (default: {DEFAULT_HOST_EXEC})",
        )
        sub.add_argument("--no-restart", action="store_true", help="do not restart containerd (k3s, RKE2)")

    install = actions.add_parser(
        "install", help="put the bundle and containerd's drop-in on the host, sync keys, restart if changed, run doctor"
    )
    host_options(install)
    change_options(install)
    install.add_argument("--bundle", help="the bundle to install (default: the one this executable runs from)")
    install.add_argument("--secret-dir", help="a mounted Secret volume whose keys go to the host keys directory")
    install.add_argument("--no-doctor", action="store_true", help="do not run ocicrypt doctor on the host afterwards")
    install.set_defaults(run=_install)

    uninstall = actions.add_parser("uninstall", help="remove exactly what install and sync-keys wrote")
    host_options(uninstall)
    change_options(uninstall)
    uninstall.set_defaults(run=_uninstall)

    status = actions.add_parser("status", help="what is installed and whether it is unchanged")
    host_options(status)
    status.set_defaults(run=_status)

    sync = actions.add_parser("sync-keys", help="copy a Secret volume's keys to the host keys directory")
    host_options(sync)
    sync.add_argument("--secret-dir", required=True, help="the mounted Secret volume")
    sync.add_argument("--watch", action="store_true", help="keep following the volume's updates (..data swaps)")
    sync.add_argument("--interval", type=float, default=2.0, help="seconds between checks with --watch (default 2)")
    sync.set_defaults(run=_sync)


def _say(line: str) -> None:
    sys.stdout.write(f"ocicrypt node: {line}\n")
    sys.stdout.flush()


def _fail(err: Exception) -> int:
    sys.stderr.write(f"ocicrypt node: {err}\n")
    return 1


def _layout(args: argparse.Namespace) -> Any:
    from .paths import HostLayout

    return HostLayout(args.host_root, args.host_prefix)


def _options(args: argparse.Namespace) -> Any:
    from .bundle import default_bundle
    from .hostexec import HostExec
    from .installer import Options

    return Options(
        layout=_layout(args),
        host_exec=HostExec.parse(args.host_exec),
        flavour=Flavour(args.flavour) if args.flavour else None,
        bundle=getattr(args, "bundle", None) or default_bundle(),
        secret_dir=getattr(args, "secret_dir", None),
        restart=not args.no_restart,
        doctor=not getattr(args, "no_doctor", False),
    )


_ERRORS: tuple[type[Exception], ...] = (ValueError,)  # every module's own error is a ValueError


def _install(args: argparse.Namespace) -> int:
    from .installer import install

    try:
        return install(_options(args), _say)
    except _ERRORS as err:
        return _fail(err)


def _uninstall(args: argparse.Namespace) -> int:
    from .installer import uninstall

    try:
        return uninstall(_options(args), _say)
    except _ERRORS as err:
        return _fail(err)


def _status(args: argparse.Namespace) -> int:
    from .installer import status

    try:
        return status(_layout(args), Flavour(args.flavour) if args.flavour else None, _say)
    except _ERRORS as err:
        return _fail(err)


def _sync(args: argparse.Namespace) -> int:
    from . import keysync

    layout = _layout(args)
    try:
        if args.watch:
            keysync.watch(layout, args.secret_dir, args.interval, _say)
            return 0
        _, files = keysync.read_secret_volume(args.secret_dir)
        for line in keysync.sync(layout, files).lines():
            _say(line)
        return 0
    except _ERRORS as err:
        return _fail(err)
