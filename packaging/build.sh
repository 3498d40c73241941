#!/usr/bin/env bash
# Build a self-contained ctd-decoder for nodes without a Python environment.
#
#   packaging/build.sh [--out DIR] [--tool pyinstaller|shiv|pex] [--work DIR] [--tarball] [--deb]
#
# Default: a PyInstaller one-folder bundle in dist/ctd-decoder/ (DIR/ctd-decoder is the executable,
# DIR/_internal its interpreter and libraries, DIR/licenses the licence texts of all it redistributes,
# collected by licenses.py). shiv and pex build a zipapp DIR/ctd-decoder instead; those still need a
# python3 of the same minor version on the node (kept for the comparison in README.md).
#   --tarball  also ctd-decoder-VERSION-linux-ARCH.tar.gz beside DIR: the bundle, install.sh, the
#              containerd and k3s snippets, config.toml.example, README.md (NODE-README.md), LICENSE
#   --deb      also ctd-decoder_VERSION_ARCH.deb beside DIR (deb.sh)
#   --node-image  also ctd-decoder-node-VERSION-linux-ARCH.oci.tar beside DIR (node-image.py): an
#              oci-archive for `skopeo copy oci-archive:FILE docker://...` or `ctr images import`,
#              the bundle plus Debian's busybox-static (apt-get install -y busybox-static), the image
#              deploy/kubernetes/ runs `ocicrypt node install` from; built for this machine's arch
#
# The build runs in its own venv (WORK/venv, default build/packaging) with the project installed
# from this checkout with all extras (pgp, pkcs11, grpc), so no test-only package is bundled.
# Needs: python3 (>= 3.11) with venv and its shared libpython (Debian: python3-venv libpython3.11),
# and access to PyPI for pyinstaller/shiv/pex and the project's dependencies.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
out="$repo/dist/ctd-decoder"
work="$repo/build/packaging"
tool="pyinstaller"
tarball=0
deb=0
node_image=0
python="${PYTHON:-python3}"

PYINSTALLER_VERSION="6.22.3"
SHIV_VERSION="1.0.8"
PEX_VERSION="2.105.2"

while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --out=*) out="${1#--out=}"; shift ;;
        --work) work="$2"; shift 2 ;;
        --work=*) work="${1#--work=}"; shift ;;
        --tool) tool="$2"; shift 2 ;;
        --tool=*) tool="${1#--tool=}"; shift ;;
        --tarball) tarball=1; shift ;;
        --deb) deb=1; shift ;;
        --node-image) node_image=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$tool" in pyinstaller|shiv|pex) ;; *) echo "build.sh: --tool must be pyinstaller, shiv or pex" >&2; exit 2 ;; esac
if [ "$tool" != pyinstaller ] && [ $((tarball + deb + node_image)) -gt 0 ]; then
    echo "build.sh: --tarball, --deb and --node-image package the PyInstaller bundle (no --tool)" >&2
    exit 2
fi
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
case "$work" in /*) ;; *) work="$PWD/$work" ;; esac

if ! command -v "$python" >/dev/null; then
    echo "build.sh: $python not found (Debian: apt-get install -y python3 python3-venv libpython3.11)" >&2
    exit 1
fi

mkdir -p "$work"
venv="$work/venv"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" || {
        echo "build.sh: could not create a venv (Debian: apt-get install -y python3-venv)" >&2
        exit 1
    }
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
case "$tool" in
    pyinstaller) "${pip[@]}" install "pyinstaller==$PYINSTALLER_VERSION" ;;
    shiv) "${pip[@]}" install "shiv==$SHIV_VERSION" ;;
    pex) "${pip[@]}" install "pex==$PEX_VERSION" ;;
esac

stage="$work/stage-$tool"
rm -rf "$stage"
mkdir -p "$stage"

case "$tool" in
    pyinstaller)
        # A regular (not editable) install of this checkout, so the bundle holds a copy of the code.
        "${pip[@]}" install --force-reinstall --no-deps "$repo"
        "${pip[@]}" install "$repo[all]"
        # ctd_decoder imports its key wrappers by name (importlib), so collect every submodule.
        (cd "$work" && "$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
            --onedir --strip --name ctd-decoder \
            --collect-submodules ctd_decoder \
            --exclude-module tkinter --exclude-module unittest --exclude-module pydoc_data \
            --distpath "$stage" --workpath "$work/pyinstaller" --specpath "$work" \
            "$here/entry.py")
        bundle="$stage/ctd-decoder"
        ;;
    shiv)
        mkdir -p "$stage/ctd-decoder"
        "$venv/bin/shiv" -q --compressed -p "/usr/bin/env python3" -e ctd_decoder.decoder:main \
            -o "$stage/ctd-decoder/ctd-decoder" "$repo[all]"
        bundle="$stage/ctd-decoder"
        ;;
    pex)
        mkdir -p "$stage/ctd-decoder"
        "$venv/bin/pex" --python-shebang "/usr/bin/env python3" -e ctd_decoder.decoder:main \
            -o "$stage/ctd-decoder/ctd-decoder" "ctd-decoder[pgp,pkcs11,grpc] @ file://$repo"
        bundle="$stage/ctd-decoder"
        ;;
esac

# Smoke test before anything is replaced: the executable must start and print its usage, and started
# as `ocicrypt` (the name install.sh links it under) be the operator command (packaging/entry.py).
"$bundle/ctd-decoder" --help | grep -q "ctd-decoder" || {
    echo "build.sh: the built executable does not start" >&2
    exit 1
}
if [ "$tool" = pyinstaller ]; then
    ln -sfn "$bundle/ctd-decoder" "$stage/ocicrypt"
    "$stage/ocicrypt" doctor --help | grep -q "containerd" || {
        echo "build.sh: the built executable, started as ocicrypt, is not the operator command" >&2
        exit 1
    }
    rm -f "$stage/ocicrypt"
fi

if [ "$tool" = pyinstaller ]; then
    "$venv/bin/python" "$here/licenses.py" --bundle "$bundle" --out "$bundle/licenses"
fi

# The warm path's small client (install.sh --warm makes it PREFIX/bin/ctd-decoder): the bundle's own
# start-up would otherwise cost most of what the warm server saves. Skipped without a C compiler.
if command -v cc >/dev/null; then
    sh "$here/warm-client/compile.sh" "$bundle/ctd-decoder-client"
else
    echo "build.sh: no C compiler: the bundle has no small warm client (install.sh --warm keeps the bundle's own)" >&2
fi

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$bundle" "$out"
rm -rf "$stage"
echo "built $out/ctd-decoder ($tool, $(du -sh "$out" | cut -f1))"

version="$("$venv/bin/python" -c 'import ctd_decoder; print(ctd_decoder.__version__)')"
if [ "$tarball" = 1 ]; then
    name="ctd-decoder-$version-linux-$(uname -m)"
    archive="$(dirname "$out")/$name.tar.gz"
    release="$work/release"
    rm -rf "$release"
    mkdir -p "$release/$name"
    cp -a "$out" "$release/$name/ctd-decoder"
    cp -r "$here/containerd" "$here/k3s" "$here/systemd" "$release/$name/"
    install -m 0755 "$here/install.sh" "$release/$name/install.sh"
    install -m 0644 "$here/NODE-README.md" "$release/$name/README.md"
    install -m 0644 "$repo/LICENSE" "$repo/config.toml.example" "$release/$name/"
    tar -C "$release" --owner=0 --group=0 -czf "$archive" "$name"
    rm -rf "$release"
    echo "packed $archive"
fi
if [ "$deb" = 1 ]; then
    bash "$here/deb.sh" "$out" "$version" "$work/deb-root" "$(dirname "$out")"
fi
if [ "$node_image" = 1 ]; then
    # The image has no C library: only the static busybox of Debian's busybox-static will run in it.
    busybox=/bin/busybox
    if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed"; then
        echo "build.sh: --node-image needs busybox-static (apt-get install -y busybox-static)" >&2
        exit 1
    fi
    image="$(dirname "$out")/ctd-decoder-node-$version-linux-$(uname -m).oci.tar"
    "$venv/bin/python" "$here/node-image.py" --bundle "$out" --busybox "$busybox" \
        --busybox-copyright /usr/share/doc/busybox-static/copyright --version "$version" --out "$image"
    echo "built $image"
fi
