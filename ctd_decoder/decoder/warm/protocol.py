"""What the warm client and the fork server say to each other over the Unix socket.

1. client -> server: one request (below);
2. server -> client: ``A`` (accepted);
3. client -> server: ``G`` (go), carrying its open descriptors among 0-3 as SCM_RIGHTS: from here
   on the client is committed and never decodes itself;
4. server -> client: ``S`` and the child's exit status (4 bytes, big-endian, signed) when it exits.

The client may give up (and decode in-process) only before it sends ``G``; the server forks only
after it has read ``G``, so a layer is never decoded twice. The descriptors travel with ``G`` only:
sent earlier, they would stay referenced in a hung server's queue, and containerd would wait
forever for the end of a stdout the client has long finished writing. The request is a 4-byte big-endian
length, then NUL-separated fields: the magic, the working directory, the umask and the descriptor
mask (decimal), the argument count, the arguments, then ``NAME=value`` environment entries. None
of these can contain NUL, and nothing here needs an import, so the client stays cheap to start.
"""

from __future__ import annotations

SOCKET_ENV = "CTD_DECODER_WARM_SOCKET"
DEFAULT_SOCKET = "/run/ctd-decoder/warm.sock"
DISABLED = "off"
MAGIC = b"ctd-decoder-warm/1"
ACCEPTED = b"A"
GO = b"G"
STATUS = b"S"
STATUS_SIZE = 1 + 4
MAX_REQUEST = 1 << 20
PASSED_FDS = (0, 1, 2, 3)


class ProtocolError(ValueError):
    """A request that does not follow this module."""


class Request:
    """What the client hands over besides its descriptors."""

    __slots__ = ("argv", "cwd", "environ", "fd_mask", "peer_pid", "umask")

    def __init__(self, argv: list[bytes], environ: list[bytes], cwd: bytes, umask: int, fd_mask: int) -> None:
        self.argv = argv
        self.environ = environ
        self.cwd = cwd
        self.umask = umask
        self.fd_mask = fd_mask
        self.peer_pid = 0  # the client's pid, as the server saw it (SO_PEERCRED); never sent

    def encode(self) -> bytes:
        """Serialize with the length prefix."""
        fields = [MAGIC, self.cwd, b"%d" % self.umask, b"%d" % self.fd_mask, b"%d" % len(self.argv)]
        body = b"\0".join(fields + self.argv + self.environ)
        return len(body).to_bytes(4, "big") + body

    @classmethod
    def decode(cls, body: bytes) -> Request:
        """Parse a body (without its length prefix); raise :class:`ProtocolError`."""
        fields = body.split(b"\0")
        if len(fields) < 5 or fields[0] != MAGIC:
            raise ProtocolError("not a warm-start request")
        try:
            umask, fd_mask, argc = int(fields[2]), int(fields[3]), int(fields[4])
        except ValueError:
            raise ProtocolError("malformed numbers in the request") from None
        if not 0 <= umask <= 0o777 or not 0 <= fd_mask < 1 << len(PASSED_FDS) or not 0 < argc <= len(fields) - 5:
            raise ProtocolError("out-of-range numbers in the request")
        environ = fields[5 + argc :]
        if any(b"=" not in entry for entry in environ):
            raise ProtocolError("malformed environment entry in the request")
        return cls(fields[5 : 5 + argc], environ, fields[1], umask, fd_mask)


def passed_fds(fd_mask: int) -> list[int]:
    """The descriptors among :data:`PASSED_FDS` that ``fd_mask`` says were sent, in order."""
    return [fd for fd in PASSED_FDS if fd_mask >> fd & 1]
