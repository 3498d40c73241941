"""A throwaway layer that each new child decodes before it waits, so that a real layer finds it ready.

A forked child shares the server's memory until it writes to it, and CPython writes to every object
it uses (reference counts): the first layer a child decodes used to copy some 700 pages of the
server's, a few milliseconds of kernel work, in the client's time. A waiting child decodes this
layer instead, on throwaway material the server made (a fresh RSA key, never anyone's), with its
output going nowhere, so that those copies are made while nobody waits; the real layer then runs
on pages the child already owns. The server decodes it once too, so that what the decode path
loads or compiles on first use is loaded before the fork and shared by every child.

The child's private memory is what a layer's child had anyway: the same pages, copied earlier.

A child rehearses at idle priority where the server may use it (:mod:`.priority`), so that a pool
refilled while layers are still coming (a pull of many small layers) takes no CPU from them.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

# Well under a pipe's buffer (64 KiB): the whole blob is written before the decoder runs.
_PLAINTEXT_SIZE = 4096


class Rehearsal:
    """An encrypted layer, the payload (fd-3 bytes) that decrypts it and its key (PEM), which the rehearsal
    also finds as a node key (a memfd as ``--decryption-keys-path``): both ways a layer's key comes."""

    __slots__ = ("blob", "key_pem", "payload")

    def __init__(self, blob: bytes, payload: bytes, key_pem: bytes) -> None:
        self.blob = blob
        self.payload = payload
        self.key_pem = key_pem


def throwaway_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 key that is nobody's: for the server's warm-up and the rehearsal layer."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_rehearsal(key: rsa.RSAPrivateKey | None = None) -> Rehearsal:
    """Encrypt a 4 KiB layer to a JWE recipient (the shape skopeo writes) with ``key`` (a fresh RSA-2048 key if
    None) and pack its payload."""
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    from ...ocicrypt import config as params
    from ...ocicrypt.config import DecryptConfig, EncryptConfig
    from ...ocicrypt.descriptor import Descriptor
    from ...ocicrypt.layer import encrypt_layer
    from ...ocicrypt.spec import LAYER_MEDIA_TYPE_PREFIX
    from ..payload import Payload, encode_payload

    key = key or throwaway_rsa_key()
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    out = io.BytesIO()
    annotations = encrypt_layer(EncryptConfig({params.PUBKEYS: [public]}), io.BytesIO(bytes(_PLAINTEXT_SIZE)), out)
    blob = out.getvalue()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    descriptor = Descriptor(LAYER_MEDIA_TYPE_PREFIX + "tar+gzip+encrypted", digest, len(blob), annotations)
    dc = DecryptConfig({params.PRIVKEYS: [private], params.PRIVKEYS_PASSWORDS: [None]})
    return Rehearsal(blob, encode_payload(Payload(dc, descriptor)), private)


def _pipe_holding(data: bytes) -> int:
    """The read end of a pipe that holds ``data`` and then ends."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    return read_end


def _memfd_holding(data: bytes) -> int:
    """A memory file (mode 0600, above fds 0-3) holding ``data``."""
    made = os.memfd_create("ctd-decoder-rehearsal-key", os.MFD_CLOEXEC)
    fd = fcntl.fcntl(made, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(made)
    os.fchmod(fd, 0o600)
    os.write(fd, data)
    return fd


def _rehearse_handshake() -> None:
    """Serve a handshake (:mod:`.handshake`) to a request this process wrote into a socket pair itself, up to
    the go-ahead, which never comes (a client sends it only once it has read ``A``)."""
    from .handshake import take_layer
    from .protocol import Request

    ours, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, client:
        client.sendall(Request([b"ctd-decoder"], [b"PATH=/usr/bin"], b"/", 0o22, 0).encode())
        client.shutdown(socket.SHUT_WR)
        take_layer(ours, os.geteuid())


def rehearse(rehearsal: Rehearsal) -> bool:
    """Serve a handshake to ourselves, then decode ``rehearsal`` in this process through the decoder's own
    path, with fds 0-3 lent to it and given back as they were; its output and any message go to /dev/null.
    True if it decoded."""
    from ...ocicrypt.keys import parse_private_key
    from ..cold import decode_main

    saved = {}
    for fd in range(4):
        try:  # above 0-3: a copy must not land on one of them while it is closed
            saved[fd] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        except OSError:
            saved[fd] = -1  # closed: closed again afterwards
    key = _memfd_holding(rehearsal.key_pem)
    lent = [_pipe_holding(rehearsal.blob), os.open(os.devnull, os.O_WRONLY), os.open(os.devnull, os.O_WRONLY)]
    lent.append(_pipe_holding(rehearsal.payload))
    try:
        _rehearse_handshake()
        for target, fd in enumerate(lent):
            os.dup2(fd, target)
        for fd in lent:
            if fd > 3:
                os.close(fd)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            status = decode_main(["--decryption-keys-path", f"/proc/self/fd/{key}"])
    except Exception:
        status = 1
    finally:
        os.close(key)
        for fd, copy in saved.items():
            if copy >= 0:
                os.dup2(copy, fd)
                os.close(copy)
            else:
                with contextlib.suppress(OSError):
                    os.close(fd)
        parse_private_key.cache_clear()  # the throwaway key: nothing of it stays for the real layer
    return status == 0
