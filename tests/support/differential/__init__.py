"""The differential harness: ours against the Go reference decoders, on mutated payloads, annotations and streams."""
