#!/usr/bin/env bash
# Package a built bundle as a Debian package (called by build.sh --deb).
#
#   packaging/deb.sh BUNDLE VERSION WORKDIR OUTDIR
#
# Writes OUTDIR/ctd-decoder_VERSION_ARCH.deb: the bundle in /usr/lib/ctd-decoder (installed by
# install.sh --warm with --prefix /usr; licence texts in /usr/lib/ctd-decoder/licenses),
# /usr/bin/ctd-decoder (the small warm client, which runs the bundle when no warm server answers),
# /usr/bin/ocicrypt (the operator command), /usr/bin/ctd-decoder-warm (the server), the units
# ctd-decoder-warm.socket + .service in /lib/systemd/system (Debian 12's systemdsystemunitdir),
# /etc/containerd/ocicrypt/keys (0700), /usr/share/doc/ctd-decoder (README.md, copyright, the
# containerd and k3s snippets with the path /usr/bin/ctd-decoder), and debian/{postinst,prerm,postrm}
# (enable and start the socket; stop it for an upgrade, stop and disable it on removal). The
# Maintainer field is $DEB_MAINTAINER (default: ctd-decoder developers <root@localhost>).
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: deb.sh BUNDLE VERSION WORKDIR OUTDIR" >&2; exit 2; }
bundle="$1" version="$2" root="$3" outdir="$4"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v dpkg-deb >/dev/null || { echo "deb.sh: needs dpkg-deb (Debian: dpkg)" >&2; exit 1; }

arch="$(dpkg --print-architecture)"
glibc="$(getconf GNU_LIBC_VERSION | cut -d' ' -f2)"  # the bundle needs the build machine's glibc or newer
deb_file="$outdir/ctd-decoder_${version}_${arch}.deb"

rm -rf "$root"
DESTDIR="" bash "$here/install.sh" --from "$bundle" --prefix /usr --destdir "$root" \
    --warm --unit-dir /lib/systemd/system >/dev/null
# install.sh put README.md and the snippets (naming /usr/bin/ctd-decoder) in /usr/share/doc/ctd-decoder;
# the package's copyright file replaces LICENSE (it names Debian's copy of the Apache licence).
doc="$root/usr/share/doc/ctd-decoder"
rm "$doc/LICENSE"
install -d -m 0755 "$root/DEBIAN"
install -m 0755 "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm" "$root/DEBIAN/"
cat > "$doc/copyright" <<END_COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ctd-decoder
Comment: /usr/lib/ctd-decoder is a self-contained bundle with its own Python runtime and libraries;
 their licence texts are in /usr/lib/ctd-decoder/licenses/ (index: /usr/lib/ctd-decoder/licenses/README).

Files: *
Copyright: the ctd-decoder authors
License: Apache-2.0
 On Debian systems the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
END_COPYRIGHT
cat > "$root/DEBIAN/control" <<END_CONTROL
Package: ctd-decoder
Version: $version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-ctd-decoder developers <root@localhost>}
Installed-Size: $(du -sk "$root" | cut -f1)
Depends: libc6 (>= $glibc)
Recommends: gnupg
Suggests: containerd
Section: admin
Priority: optional
Description: containerd stream processor that decrypts encrypted image layers
 A drop-in replacement for containerd's ctd-decoder (imgcrypt), self-contained (its own Python
 runtime in /usr/lib/ctd-decoder). It decrypts layers whose keys are wrapped with JWE, PKCS#7,
 OpenPGP, PKCS#11 or a key provider. Private keys go in /etc/containerd/ocicrypt/keys;
 /usr/share/doc/ctd-decoder/examples has the containerd and k3s configuration snippets, and
 "ocicrypt doctor" checks the node's decryption setup.
 .
 The package enables ctd-decoder-warm.socket: a resident server, started by its socket on the
 first layer, spares each layer the decoder's start-up. Without it (systemd not running, or
 after systemctl disable --now ctd-decoder-warm.socket ctd-decoder-warm.service) layers
 decode in-process as before.
END_CONTROL
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb_file" >/dev/null
rm -rf "$root"
echo "packed $deb_file"
