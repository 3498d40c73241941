"""What the installer finds on a host, and therefore how it hooks the decoder into containerd.

Strategies:
- ``dropin``: the config already imports a drop-in directory (containerd 2.2+'s ``conf.d``, k3s's
  and RKE2's ``config(-v3).toml.d`` since k3s#13680): write one file there, touch nothing else;
- ``imports``: containerd's own config.toml does not: write the drop-in and add it to ``imports``
  (a marked, reversible insertion);
- ``create``: no config.toml and no ``conf.d``: write a config.toml of our own that imports it;
- ``template``: k3s/RKE2 without a drop-in directory: a template built on their base template.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from dataclasses import dataclass

from .paths import DROPIN_NAME, FLAVOURS, Flavour, HostLayout

STRATEGIES = ("dropin", "imports", "create", "template")


class DetectError(ValueError):
    """The host's setup is one the installer must not change (one line for the operator)."""


@dataclass(frozen=True)
class Plan:
    """Where the decoder's configuration goes on this host (host paths)."""

    flavour: Flavour
    strategy: str
    config_version: int
    config: str  # the main config.toml (containerd's, or the one k3s/RKE2 render)
    target: str  # the drop-in, or the template

    @property
    def units(self) -> tuple[str, ...]:
        return FLAVOURS[self.flavour].units


def detect_flavour(layout: HostLayout) -> Flavour:
    """k3s or RKE2 when their agent's containerd directory exists, else containerd."""
    for flavour in (Flavour.K3S, Flavour.RKE2):
        if os.path.isdir(layout.local(FLAVOURS[flavour].config_dir)):
            return flavour
    return Flavour.CONTAINERD


def _load(layout: HostLayout, host_path: str) -> dict[str, object] | None:
    try:
        with open(layout.local(host_path), "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return None
    except tomllib.TOMLDecodeError as err:
        raise DetectError(f"{host_path} is not valid TOML ({err}): fix it before installing") from None


def _imports(config: dict[str, object]) -> list[str]:
    value = config.get("imports", [])
    return [str(v) for v in value] if isinstance(value, list) else []


def _version(config: dict[str, object], host_path: str) -> int:
    version = config.get("version", 1)
    if version not in (2, 3):
        raise DetectError(
            f"{host_path} is config version {version}: the installer writes versions 2 and 3 only "
            "(add `version = 2` and the version-2 table names first)"
        )
    return int(str(version))


def imported(config: dict[str, object], host_file: str, layout: HostLayout) -> bool:
    """Whether ``config`` imports ``host_file`` (as the host names it) by path or glob."""
    name = layout.on_host(host_file)
    return any(fnmatch.fnmatch(name, pattern) for pattern in _imports(config))


def plan(layout: HostLayout, flavour: Flavour | None = None) -> Plan:
    """Read the host's containerd configuration and decide where ours goes."""
    flavour = flavour or detect_flavour(layout)
    paths = FLAVOURS[flavour]
    config = _load(layout, paths.config)
    if flavour is Flavour.CONTAINERD:
        if config is None:
            dropin_dir = paths.dropin_dir(3)
            if os.path.isdir(layout.local(dropin_dir)):  # containerd 2.2+ imports it by default
                return Plan(flavour, "dropin", 3, paths.config, f"{dropin_dir}/{DROPIN_NAME}")
            return Plan(flavour, "create", 2, paths.config, f"{dropin_dir}/{DROPIN_NAME}")
        version = _version(config, paths.config)
        target = f"{paths.dropin_dir(version)}/{DROPIN_NAME}"
        return Plan(flavour, "dropin" if imported(config, target, layout) else "imports", version, paths.config, target)
    if config is None:
        raise DetectError(
            f"{paths.config} does not exist: start {flavour.value} once so that it renders containerd's config"
        )
    version = _version(config, paths.config)
    target = f"{paths.dropin_dir(version)}/{DROPIN_NAME}"
    if imported(config, target, layout):
        return Plan(flavour, "dropin", version, paths.config, target)
    return Plan(flavour, "template", version, paths.config, paths.template(version))
