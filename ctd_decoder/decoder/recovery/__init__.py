"""Descriptor recovery: decrypt a layer that containerd sent without its fd-3 payload, with the node's keys.

containerd starts the decoder without a payload on several pull paths (see :mod:`.messages`). The
decoder then still knows its keys (the node's keys directory, key providers, PKCS#11 configs); what
it lacks is the layer's descriptor (digest, size, media type and the annotations with the wrapped
keys). containerd leaves it within reach:

1. the process that started the decoder holds the layer's content blob open (:mod:`.openblobs`);
   the blob whose first bytes are stdin's first bytes (:mod:`.peek`, nothing is consumed) is the layer;
2. the image manifest listing that blob was written into the same content store before the layer
   was fetched (:mod:`.manifests`), newest first; an index of the store's blobs (:mod:`.index`) spares
   the next search a stat of every blob.

Only the descriptor is recovered; keys never come from the content store. Every candidate descriptor
is returned, newest first; the caller uses the first whose wrapped key the node's keys open.
"""

# Nothing is imported here: the flag parser reads .switch on every decoder start, and the rest is only
# needed when there is no payload.
