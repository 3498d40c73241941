"""The warm path: a resident fork server that has done the decoder's imports, and its client.

``ctd-decoder`` hands its stdin, stdout, stderr and fd 3, its argv, environment, working directory
and umask to the server (:mod:`.client`); the server (:mod:`.server`) forks one child per layer,
which runs the same decoder code as the cold path (:mod:`.child`) and whose exit status the client
exits with. The server itself never reads a key, a payload or a layer.
"""
