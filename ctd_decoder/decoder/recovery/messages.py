"""The no-payload diagnostic once descriptor recovery has been tried (or was not allowed to be)."""

from __future__ import annotations

from ..payload import MISSING_PAYLOAD, PAYLOAD_PROCESSOR_IDS

# Where containerd starts the stream processor without a payload (containerd#12705, imgcrypt#205).
NO_PAYLOAD_PATHS = (
    "containerd 2.1 and later pulling through the transfer service (the CRI with use_local_image_pull = false, "
    "its default; `ctr image pull` of 2.x; nerdctl 2.3 and later)",
    "the CRI's local pull of containerd 2.0.0-2.0.11, 2.1.0-2.1.6 and 2.2.0-2.2.1 (and the k3s releases that "
    "ship them)",
    "a plain `ctr images pull` or `ctr images import` (1.x and 2.x)",
    'the CRI when its image_decryption key_model is not "node"',
)
GET_A_PAYLOAD = (
    'pull through the CRI (crictl, the kubelet, k3s) with key_model = "node" on containerd 1.6/1.7, or on '
    "2.1.7+/2.2.2+/2.3+ with use_local_image_pull = true; or use `ctr-enc images pull --key ...` / "
    "`ctr-enc images import --key ...`"
)


def _zstd_processor_id(media_type: str) -> str:
    return (
        f"containerd sends the payload only to the stream processors with ID {' and '.join(PAYLOAD_PROCESSOR_IDS)}, "
        f"so the processor entry that accepts +zstd+encrypted must use the ID {PAYLOAD_PROCESSOR_IDS[0]} "
        f"(returning application/vnd.oci.image.layer.v1.tar+zstd), not ...decoder.v1.tar.zstd"
    )


def no_payload(media_type: str, recovery: str) -> str:
    """The whole diagnostic: Go's prefix, why there is no payload, what recovery did, how to get a payload.

    ``recovery`` says what descriptor recovery tried and why it failed (or why it was not tried).
    """
    layer = f"a layer of type {media_type}" if media_type else "a layer"
    head = f"{MISSING_PAYLOAD} (containerd started ctd-decoder for {layer} without a decryption payload on fd 3"
    if media_type.endswith("+zstd+encrypted"):
        head += ": " + _zstd_processor_id(media_type)
    example = "" if media_type else " (a .tar.zstd entry, for example)"
    return (
        f"{head}; descriptor recovery {recovery}; containerd sends no payload on these paths: "
        f"{'; '.join(NO_PAYLOAD_PATHS)}; to get a payload, {GET_A_PAYLOAD}; "
        f"processor IDs other than {' or '.join(PAYLOAD_PROCESSOR_IDS)}{example} get none either)"
    )
