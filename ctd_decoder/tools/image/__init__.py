"""OCI images on disk in skopeo's transport syntax: ``oci:DIR[:REF]`` and ``oci-archive:FILE[:REF]``.

Reading (for every subcommand, and for ``ocicrypt doctor --image``)::

    from ctd_decoder.tools.image import open_image

    with open_image("oci:/srv/images/app:v1") as image:
        for manifest in image.manifests:          # one per platform
            print(manifest.platform, manifest.descriptor.digest)
            for layer in manifest.layers:         # ocicrypt Descriptor objects
                with image.open_blob(layer) as blob:   # a stream checked against the digest
                    ...

Writing goes through :class:`~ctd_decoder.tools.image.writer.LayoutWriter`, which builds the whole
destination beside it and moves it into place only once complete.
"""

from __future__ import annotations

from .errors import ImageError
from .layout import Image, ImageManifest, Platform, open_image
from .reference import ImageReference, parse_reference

__all__ = ["Image", "ImageError", "ImageManifest", "ImageReference", "Platform", "open_image", "parse_reference"]
