"""The warm server's pre-forked children, one module at a time: each has its own randomness.

A waiting child is forked from the server long before its layer: without a reseed after the fork, two children
(and the server) would draw the same "random" bytes, i.e. the same RSA-OAEP seeds, the same ephemeral keys.
Here a server-like process has used OpenSSL's generator (through cryptography) and Python's ``random`` before
forking, then two real pool children each take a client of the real warm client (a pipe as its stdout) from
the listening socket and report their first draws there. The same draws in the parent after the forks are what
a child without its own state would have produced.
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, os, random, socket, sys, tempfile
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from ctd_decoder.decoder.warm import pool
from ctd_decoder.decoder.warm.client import hand_off
from ctd_decoder.decoder.warm.protocol import SOCKET_ENV, STATUS

RAW = serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()

def draw():
    return {"openssl": X25519PrivateKey.generate().private_bytes(*RAW).hex(), "random": random.getrandbits(128)}

draw()  # both generators seeded and used in the server before it forks

def run_child(request, fds, channel_fd, conn_fd, server_pid, environ):
    os.write(fds[1], json.dumps({"pid": os.getpid(), **draw()}).encode())  # the client's stdout
    os.write(conn_fd, STATUS + bytes(4))
    os._exit(0)

path = os.path.join(tempfile.mkdtemp(), "warm.sock")
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path)
listener.listen(8)
listener.setblocking(False)
children = [pool.spawn_waiting(listener, run_child) for _ in range(2)]
firsts = []
devnull = os.open(os.devnull, os.O_RDWR)
for _ in children:  # each child takes one client
    read, write = os.pipe()
    status = hand_off(["ctd-decoder"], {SOCKET_ENV: path}, (devnull, write, devnull, devnull))
    assert status == 0, status
    os.close(write)
    firsts.append(json.loads(os.read(read, 4096)))
    os.close(read)
for child in children:
    _, status = os.waitpid(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    pool.close(child)
assert {first.pop("pid") for first in firsts} == {child.pid for child in children}
print(json.dumps({"server": draw(), "children": firsts}))
"""


def test_two_pool_children_draw_different_first_random_bytes() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    drawn = json.loads(done.stdout)
    first, second = drawn["children"]
    server = drawn["server"]
    for source in ("openssl", "random"):
        values = {first[source], second[source], server[source]}
        assert len(values) == 3, f"{source}: a child reused the server's state: {first}, {second}, {server}"
    assert len(bytes.fromhex(first["openssl"])) == 32
