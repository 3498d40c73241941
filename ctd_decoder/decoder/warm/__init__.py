"""The warm path: a resident fork server that has done the decoder's imports, and its client.

``ctd-decoder`` hands its stdin, stdout, stderr and fd 3, its argv, environment, working directory
and umask over the server's socket (:mod:`.client`); one of the children the server keeps waiting
(:mod:`.pool`) takes it (:mod:`.handshake`) and runs the same decoder code as the cold path
(:mod:`.child`), whose exit status the client exits with. The server (:mod:`.server`) forks and watches
them, and itself never reads a key, a payload or a layer.
"""
