"""The ``ocicrypt`` operator command."""
