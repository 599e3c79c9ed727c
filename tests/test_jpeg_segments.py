"""Stripping a JPEG's metadata segments keeps its compressed pixels exactly (classifier.lib.jpeg_segments)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from classifier.lib.jpeg_segments import NotAJpeg, strip_metadata
from tests.test_imaging import FAKE_ICC, XMP, exif_with_gps

GPS_IFD = 0x8825


def textured(size=(96, 64), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(3)
    channels = len(mode)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8), mode)


def jpeg(image: Image.Image, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, **params)
    return out.getvalue()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def markers(data: bytes) -> list[int]:
    """The markers of the segments before the first scan."""
    found, position = [], 2
    while data[position + 1] != 0xDA:
        marker = data[position + 1]
        found.append(marker)
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return found


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="baseline"),
        pytest.param({"progressive": True}, id="progressive"),
        pytest.param({"restart_marker_blocks": 4}, id="restart-markers"),
        pytest.param({"subsampling": 0}, id="4:4:4"),
    ],
)
def test_the_pixels_are_identical_and_the_gps_position_icc_xmp_and_comment_are_gone(params):
    original = jpeg(textured(), exif=exif_with_gps(), icc_profile=FAKE_ICC, xmp=XMP, comment=b"Mrs Smith", **params)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the upload has them

    stripped = strip_metadata(original)

    assert np.array_equal(pixels(stripped), pixels(original))
    with Image.open(io.BytesIO(stripped)) as reopened:
        assert not {"exif", "icc_profile", "xmp", "comment"} & reopened.info.keys()
        assert dict(reopened.getexif()) == {}
    assert b"Mrs Smith" not in stripped and b"DermaCam" not in stripped
    assert all(marker == 0xE0 or not 0xE0 <= marker <= 0xEF for marker in markers(stripped))
    assert len(stripped) < len(original)


def test_a_cmyk_jpeg_keeps_its_adobe_segment_and_so_its_colours():
    original = jpeg(textured(mode="CMYK"), comment=b"scanned by Dr Jones")

    stripped = strip_metadata(original)

    assert 0xEE in markers(stripped)
    assert np.array_equal(pixels(stripped), pixels(original))


def test_what_follows_the_end_of_the_picture_is_dropped():
    original = jpeg(textured())

    stripped = strip_metadata(original + b"hidden: patient 1234" + jpeg(textured((8, 8))))

    assert stripped == strip_metadata(original)
    assert stripped.endswith(b"\xff\xd9")


def test_a_jpeg_without_metadata_comes_back_unchanged():
    original = strip_metadata(jpeg(textured()))

    assert strip_metadata(original) == original


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"\x89PNG\r\n\x1a\n", "no start-of-image", id="png"),
        pytest.param(None, "cut short", id="truncated"),
    ],
)
def test_what_is_not_a_whole_jpeg_is_refused_with_the_reason(data, reason):
    if data is None:
        whole = jpeg(textured())
        data = whole[: len(whole) // 2]

    with pytest.raises(NotAJpeg, match=reason):
        strip_metadata(data)


def test_the_orientation_travels_alone_so_the_picture_still_turns_upright():
    from PIL import ImageOps

    from classifier.lib.jpeg_segments import with_orientation

    original = jpeg(textured((60, 40)), exif=exif_with_gps(orientation=6), comment=b"Mrs Smith")

    kept = with_orientation(strip_metadata(original), 6)

    with Image.open(io.BytesIO(kept)) as reopened:
        assert dict(reopened.getexif()) == {0x0112: 6}
        upright = ImageOps.exif_transpose(reopened)
        assert upright.size == (40, 60)
    with Image.open(io.BytesIO(original)) as first:
        assert np.array_equal(np.asarray(upright), np.asarray(ImageOps.exif_transpose(first)))
