"""The containerd stream processor ``ctd-decoder``: argv, the fd-3 payload, exit codes.

``main`` here is the console entry point; the in-process decoding it falls back to is
:mod:`ctd_decoder.decoder.cold`, the fd-3 payload :mod:`ctd_decoder.decoder.payload`.
"""

# containerd sets it for every stream processor it starts, to the layer's media type. Defined here,
# in the package every path has loaded already: the failing warm client's exit-race guard reads it
# without importing the payload module (and through it the library).
MEDIA_TYPE_ENV = "STREAM_PROCESSOR_MEDIATYPE"


def main() -> int:
    """Console entry point: hand the layer to the warm server if one answers, else decode it here.

    Nothing of the decoder is imported before the hand-off: on the warm path this process only
    passes its descriptors on and waits, so every import here is start-up the server already paid.
    ``_signal`` rather than ``signal`` (which imports ``enum``): a SIGINT during the start-up
    imports ends the process without a traceback; the decoder sets its own handlers (clean-up,
    then exit status 128+signal) as soon as it runs.
    """
    import _signal  # type: ignore[import-not-found]  # no stub; it is what signal wraps
    import sys

    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    from .warm.client import hand_off

    status = hand_off(sys.argv)
    if status is None:
        from .cold import decode_main

        status = decode_main(sys.argv[1:])
    if status != 0:
        # Here, in the process containerd runs and reaps, whether it decoded or its warm child did.
        from .exit_race import hold_stdout_until_reaped

        hold_stdout_until_reaped()
    return status
