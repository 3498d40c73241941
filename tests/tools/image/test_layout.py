"""Reading OCI layouts and archives: image selection, platforms, checked blob streams."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from support.oci import layer_digests, make_layout, read_layers, skopeo

from ctd_decoder.tools.image import ImageError, Platform, open_image, parse_reference

LAYERS = [{"etc/hello.txt": b"hello\n"}, {"bin/tool": bytes(range(256)) * 50}]


def test_reference_syntax_follows_skopeo() -> None:
    assert str(parse_reference("oci:dir:v1")) == "oci:dir:v1"
    assert parse_reference("oci-archive:img.tar").ref is None
    for bad in ("docker://x/y", "dir", "oci:", "oci:dir:"):
        with pytest.raises(ImageError):
            parse_reference(bad)


def test_skopeo_copied_layout_lists_platform_and_layers(tmp_path: Path) -> None:
    make_layout(tmp_path / "src", LAYERS)
    skopeo("copy", "-q", f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'copy'}:v2")
    with open_image(f"oci:{tmp_path / 'copy'}:v2") as image:
        [manifest] = image.manifests
        assert manifest.platform == Platform("linux", "amd64")
        assert [layer.digest for layer in manifest.layers] == layer_digests(tmp_path / "src")
        with image.open_blob(manifest.layers[1]) as blob:
            assert len(blob.read()) == manifest.layers[1].size


def test_oci_archive_reads_like_the_directory(tmp_path: Path) -> None:
    make_layout(tmp_path / "src", LAYERS)
    skopeo("copy", "-q", f"oci:{tmp_path / 'src'}:v1", f"oci-archive:{tmp_path / 'img.tar'}:v1")
    with open_image(f"oci-archive:{tmp_path / 'img.tar'}") as image:
        assert len(image.manifests[0].layers) == 2
        assert image.read_blob(image.manifests[0].layers[0])


def test_archive_members_outside_the_layout_are_not_unpacked(tmp_path: Path) -> None:
    make_layout(tmp_path / "src", LAYERS)
    with tarfile.open(tmp_path / "evil.tar", "w") as archive:
        for path in sorted((tmp_path / "src").rglob("*")):
            archive.add(path, str(path.relative_to(tmp_path / "src")), recursive=False)
        archive.add(tmp_path / "src" / "index.json", "../../escaped.json")
    with open_image(f"oci-archive:{tmp_path / 'evil.tar'}:v1") as image:
        assert image.manifests
    assert not (tmp_path / "escaped.json").exists()


def test_missing_blob_is_named(tmp_path: Path) -> None:
    make_layout(tmp_path / "src", LAYERS)
    layer = read_layers(tmp_path / "src")[1].descriptor["digest"]
    (tmp_path / "src" / "blobs" / "sha256" / layer.split(":")[1]).unlink()
    with open_image(f"oci:{tmp_path / 'src'}") as image, pytest.raises(ImageError, match=f"blob {layer} is missing"):
        image.open_blob(image.manifests[0].layers[1])


def test_an_over_long_index_json_is_refused_by_its_size(tmp_path: Path) -> None:
    make_layout(tmp_path / "src", LAYERS)
    (tmp_path / "src" / "index.json").write_bytes(b" " * (4 << 20) + b"{}")
    with (
        pytest.raises(ImageError, match=r"^oci:.*: index\.json is larger than 4194304 bytes$"),
        open_image(f"oci:{tmp_path / 'src'}"),
    ):
        pytest.fail("an over-long index.json was read")


def test_tampered_blob_fails_its_digest_check_when_read(tmp_path: Path) -> None:
    make_layout(tmp_path / "src", LAYERS)
    layer = read_layers(tmp_path / "src")[0].descriptor["digest"]
    path = tmp_path / "src" / "blobs" / "sha256" / layer.split(":")[1]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with (
        open_image(f"oci:{tmp_path / 'src'}:v1") as image,
        image.open_blob(image.manifests[0].layers[0]) as blob,
        pytest.raises(ImageError, match="does not match its digest"),
    ):
        while blob.read(7):
            pass


def test_traversal_digest_in_a_manifest_is_refused(tmp_path: Path) -> None:
    make_layout(tmp_path / "src", LAYERS)
    index = json.loads((tmp_path / "src" / "index.json").read_text())
    index["manifests"][0]["digest"] = "sha256:../../../etc/passwd"
    (tmp_path / "src" / "index.json").write_text(json.dumps(index))
    with pytest.raises(ImageError, match="malformed digest"), open_image(f"oci:{tmp_path / 'src'}:v1"):
        pass


def test_several_images_need_a_name_and_unknown_names_list_the_known(tmp_path: Path) -> None:
    make_layout(tmp_path / "src", LAYERS)
    skopeo("copy", "-q", f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'src'}:v2")
    with pytest.raises(ImageError, match="holds 2 images"), open_image(f"oci:{tmp_path / 'src'}"):
        pass
    with pytest.raises(ImageError, match="names: v1, v2"), open_image(f"oci:{tmp_path / 'src'}:v3"):
        pass


def test_platform_selection_refuses_absent_platforms(tmp_path: Path) -> None:
    make_layout(tmp_path / "src", LAYERS)
    with open_image(f"oci:{tmp_path / 'src'}:v1") as image:
        assert image.select([Platform.parse("linux/amd64")]) == image.manifests
        with pytest.raises(ImageError, match="no manifest for platform linux/arm64"):
            image.select([Platform.parse("linux/arm64")])
