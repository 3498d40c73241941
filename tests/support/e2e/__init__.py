"""Helpers of the end-to-end tests: private containerd daemons, a registry, the gRPC client, images and schemes."""
