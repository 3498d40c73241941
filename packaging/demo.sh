#!/usr/bin/env bash
# End-to-end demo on a fresh Debian 12 machine, as root:
#
#   packaging/demo.sh [--packaged]
#
# 1. installs what it needs: apt (containerd runc skopeo docker-registry python3-venv) and a venv
#    with this project (build/demo-venv);
# 2. starts a docker-registry and a private containerd (CRI, key_model = "node") on 127.0.0.1,
#    both in a temp dir, with our ctd-decoder registered as the ocicrypt stream processor;
# 3. encrypts a two-layer image with skopeo (JWE, RSA-2048), pushes it, pulls it through the CRI
#    PullImage call (as kubelet / k3s do) and prints the verified layer digests;
# 4. stops both daemons by pid and removes the temp dir.
#
# --packaged builds the self-contained executable (packaging/build.sh) and lets containerd run that
# instead of the venv's console script. Nothing listens on anything but 127.0.0.1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
packaged=0
for arg in "$@"; do
    case "$arg" in
        --packaged) packaged=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh installs Debian packages and runs containerd: run it as root" >&2
    exit 1
fi

# shellcheck source=packaging/debian-packages.sh
source "$here/debian-packages.sh"
ensure_debian_packages containerd runc skopeo docker-registry python3 python3-venv ca-certificates

venv="${CTD_DEMO_VENV:-$repo/build/demo-venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating $venv"
    "$python" -m venv "$venv"
fi
echo "==> installing ctd-decoder (and grpcio for the CRI client) into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$repo"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$repo[grpc]"

decoder="$venv/bin/ctd-decoder"
if [ "$packaged" = 1 ]; then
    echo "==> building the self-contained executable"
    bash "$here/build.sh" --out "$repo/build/demo-bundle" --work "$repo/build/packaging"
    decoder="$repo/build/demo-bundle/ctd-decoder"
fi

cd "$repo"
PYTHONPATH="$repo/tests" exec "$venv/bin/python" -m support.e2e.demo --decoder "$decoder"
