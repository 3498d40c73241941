#!/usr/bin/env bash
# Install the self-contained ctd-decoder on a containerd / k3s node (run as root).
#
#   packaging/install.sh [--from DIR] [--prefix PREFIX] [--destdir DESTDIR]
#                        [--keyprovider-config FILE] [--keys-dir DIR] [--warm [--unit-dir DIR]]
#
#   --from DIR                 the bundle built by packaging/build.sh (default: ctd-decoder/ beside
#                              this script in a release tarball, else dist/ctd-decoder of the
#                              checkout); a .tar.gz made by build.sh --tarball is accepted too
#   --prefix PREFIX            default /usr/local: PREFIX/lib/ctd-decoder/ holds the bundle (its
#                              licence texts in licenses/), PREFIX/bin/ctd-decoder (the path containerd
#                              runs) and PREFIX/bin/ocicrypt (the operator command: ocicrypt doctor)
#                              link to it, PREFIX/share/doc/ctd-decoder/ has README.md, LICENSE and
#                              examples/ (the containerd and k3s snippets, naming PREFIX/bin/ctd-decoder)
#   --destdir DESTDIR          stage everything below DESTDIR (also taken from $DESTDIR), for
#                              packaging and tests; nothing outside it is touched
#   --keyprovider-config FILE  install FILE as /etc/containerd/ocicrypt/ocicrypt_keyprovider.conf
#                              (the path containerd's default decoder entries pass in
#                              OCICRYPT_KEYPROVIDER_CONFIG)
#   --keys-dir DIR             default /etc/containerd/ocicrypt/keys: created (or fixed) with mode 0700
#   --warm                     also install the warm-start server (PREFIX/bin/ctd-decoder-warm and the
#                              systemd units ctd-decoder-warm.socket + .service in the unit directory)
#                              and enable its socket; PREFIX/bin/ctd-decoder becomes the bundle's small
#                              client (if build.sh compiled one); with --destdir the units are only staged
#                              (the Debian package's postinst enables them, see debian/postinst)
#   --unit-dir DIR             where --warm puts the units: default /etc/systemd/system (the
#                              administrator's); deb.sh passes /lib/systemd/system (a package's)
#
# Existing keys are never touched. `PREFIX/bin/ocicrypt doctor` then checks the node. What containerd
# needs (measured on containerd 1.6.20 and 2.3.4; EX = PREFIX/share/doc/ctd-decoder/examples):
#   containerd 1.x: nothing for gzip and uncompressed layers when PREFIX/bin is on containerd's PATH
#     (its built-in entries run `ctd-decoder` from PATH, looked up at each pull: no restart);
#     zstd layers need EX/containerd/config-v2.toml merged into /etc/containerd/config.toml and a restart.
#   containerd 2.x: merge EX/containerd/config-v3.toml (use_local_image_pull = true) and restart.
#   k3s: EX/k3s/config.toml.tmpl or EX/k3s/config-v3.toml.tmpl, then restart k3s.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
from="$repo/dist/ctd-decoder"
[ -x "$here/ctd-decoder/ctd-decoder" ] && from="$here/ctd-decoder"  # unpacked release tarball
prefix="/usr/local"
destdir="${DESTDIR:-}"
keyprovider_config=""
keys_dir="/etc/containerd/ocicrypt/keys"
warm=0
unit_dir="/etc/systemd/system"

while [ $# -gt 0 ]; do
    case "$1" in
        --from) from="$2"; shift 2 ;;
        --from=*) from="${1#--from=}"; shift ;;
        --prefix) prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --destdir) destdir="$2"; shift 2 ;;
        --destdir=*) destdir="${1#--destdir=}"; shift ;;
        --keyprovider-config) keyprovider_config="$2"; shift 2 ;;
        --keyprovider-config=*) keyprovider_config="${1#--keyprovider-config=}"; shift ;;
        --keys-dir) keys_dir="$2"; shift 2 ;;
        --keys-dir=*) keys_dir="${1#--keys-dir=}"; shift ;;
        --warm) warm=1; shift ;;
        --unit-dir) unit_dir="$2"; shift 2 ;;
        --unit-dir=*) unit_dir="${1#--unit-dir=}"; shift ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

fail() { echo "install.sh: $*" >&2; exit 1; }

case "$prefix" in /*) ;; *) fail "--prefix must be absolute" ;; esac
case "$keys_dir" in /*) ;; *) fail "--keys-dir must be absolute" ;; esac
case "$unit_dir" in /*) ;; *) fail "--unit-dir must be absolute" ;; esac
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    fail "installing into / needs root (or use --destdir)"
fi

scratch=""
cleanup() { [ -n "$scratch" ] && rm -rf "$scratch"; return 0; }
trap cleanup EXIT

if [ -f "$from" ] && [[ "$from" == *.tar.gz ]]; then
    scratch="$(mktemp -d)"
    tar -C "$scratch" -xzf "$from"
    from="$(find "$scratch" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
    [ -x "$from/ctd-decoder/ctd-decoder" ] && from="$from/ctd-decoder"  # a release tarball around the bundle
fi
[ -x "$from/ctd-decoder" ] || fail "no executable $from/ctd-decoder: run packaging/build.sh first (or pass --from)"

lib="$destdir$prefix/lib/ctd-decoder"
bin="$destdir$prefix/bin"
etc="$destdir/etc/containerd/ocicrypt"

# Copy next to the old bundle, then swap, so a layer being decrypted right now keeps working.
install -d -m 0755 "$(dirname "$lib")" "$bin"
rm -rf "$lib.new"
cp -a "$from" "$lib.new"
chmod -R u=rwX,go=rX "$lib.new"
if [ -e "$lib" ]; then
    rm -rf "$lib.old"
    mv "$lib" "$lib.old"
fi
mv "$lib.new" "$lib"
rm -rf "$lib.old"
# Relative links, so a staged tree (DESTDIR) works where it is and after it is copied to /. The bundle
# is the decoder, or the operator command when started as `ocicrypt` (packaging/entry.py).
ln -sfn "../lib/ctd-decoder/ctd-decoder" "$bin/ctd-decoder"
ln -sfn "../lib/ctd-decoder/ctd-decoder" "$bin/ocicrypt"

# The node README and the snippets, pointed at this prefix's decoder (the sources name /usr/local/bin).
# From a checkout they are packaging/NODE-README.md and ../config.toml.example; in a release tarball
# README.md and config.toml.example beside this script.
doc="$destdir$prefix/share/doc/ctd-decoder"
readme="$here/NODE-README.md"
[ -f "$readme" ] || readme="$here/README.md"
example="$repo/config.toml.example"
[ -f "$example" ] || example="$here/config.toml.example"
licence="$repo/LICENSE"
[ -f "$licence" ] || licence="$here/LICENSE"
install -d -m 0755 "$doc/examples/containerd" "$doc/examples/k3s"
install -m 0644 "$readme" "$doc/README.md"
install -m 0644 "$licence" "$doc/LICENSE"
for source in "$example" "$here"/containerd/*.toml "$here"/k3s/*.tmpl; do
    case "$source" in
        */containerd/*) target="$doc/examples/containerd" ;;
        */k3s/*) target="$doc/examples/k3s" ;;
        *) target="$doc/examples" ;;
    esac
    sed "s#/usr/local/bin/ctd-decoder#$prefix/bin/ctd-decoder#g" "$source" > "$target/$(basename "$source")"
    chmod 0644 "$target/$(basename "$source")"
done

install -d -m 0755 "$etc"
install -d -m 0700 "$destdir$keys_dir"
chmod 0700 "$destdir$keys_dir"
if [ -n "$keyprovider_config" ]; then
    [ -f "$keyprovider_config" ] || fail "no such key-provider config $keyprovider_config"
    install -m 0644 "$keyprovider_config" "$etc/ocicrypt_keyprovider.conf"
fi

"$bin/ctd-decoder" --help >/dev/null || fail "the installed $prefix/bin/ctd-decoder does not start"
"$bin/ocicrypt" --version >/dev/null || fail "the installed $prefix/bin/ocicrypt does not start"

if [ "$warm" = 1 ]; then
    # The bundle's executable is the warm server when it runs under that name.
    ln -sfn "../lib/ctd-decoder/ctd-decoder" "$bin/ctd-decoder-warm"
    # What containerd runs becomes the small client, which execs the bundle when no server answers.
    if [ -x "$lib/ctd-decoder-client" ]; then
        ln -sfn "../lib/ctd-decoder/ctd-decoder-client" "$bin/ctd-decoder"
    fi
    units="$destdir$unit_dir"
    install -d -m 0755 "$units"
    install -m 0644 "$here/systemd/ctd-decoder-warm.socket" "$units/"
    sed "s|@BINDIR@|$prefix/bin|g" "$here/systemd/ctd-decoder-warm.service" > "$units/ctd-decoder-warm.service"
    chmod 0644 "$units/ctd-decoder-warm.service"
    if [ -z "$destdir" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable --now ctd-decoder-warm.socket
        systemctl try-restart ctd-decoder-warm.service  # a running server picks the new bundle up
        echo "warm start enabled (ctd-decoder-warm.socket); turn it off: systemctl disable --now ctd-decoder-warm.socket ctd-decoder-warm.service"
    else
        echo "warm start units staged in $units; enable with: systemctl enable --now ctd-decoder-warm.socket"
    fi
fi

echo "installed $prefix/bin/ctd-decoder and $prefix/bin/ocicrypt -> $prefix/lib/ctd-decoder/${destdir:+ (under $destdir)}"
echo "keys directory $keys_dir (mode 0700)${keyprovider_config:+; key providers in /etc/containerd/ocicrypt/ocicrypt_keyprovider.conf}"
examples="$prefix/share/doc/ctd-decoder/examples"
echo "check the node first: $prefix/bin/ocicrypt doctor"
echo "containerd 1.x: gzip and uncompressed encrypted layers decrypt now, with no restart, if $prefix/bin is on"
echo "  containerd's PATH (its built-in entries run ctd-decoder from PATH)."
echo "zstd layers, containerd 2.x, or another path: merge $examples/containerd/config-v2.toml (1.x) or"
echo "  $examples/containerd/config-v3.toml (2.x) into /etc/containerd/config.toml and restart containerd;"
echo "  k3s: $examples/k3s/config.toml.tmpl or config-v3.toml.tmpl into /var/lib/rancher/k3s/agent/etc/containerd/."
