"""The containerd stream processor ``ctd-decoder``: argv, the fd-3 payload, exit codes."""


def main() -> int:
    """Console entry point: before anything else is imported, a SIGINT ends the process without a traceback.

    The decoder sets its own handlers (clean-up, then exit status 128+signal) as soon as it runs;
    this closes the window of its start-up imports, where Python would print KeyboardInterrupt.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from .main import main as decoder_main

    return decoder_main()
