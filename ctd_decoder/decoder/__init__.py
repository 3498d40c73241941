"""The containerd stream processor ``ctd-decoder``: argv, the fd-3 payload, exit codes."""
