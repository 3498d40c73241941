"""The ``provider.<name>`` schemes: external key providers reached by a command or over gRPC."""
