"""The PNG writer that stores uploads (classifier.lib.png): lossless, valid, nothing but pixels."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from classifier.lib.png import ROWS_PER_BLOCK, encode_rgb_png


def decoded(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        assert (image.format, image.mode) == ("PNG", "RGB")
        return np.asarray(image)


def chunks(png: bytes) -> list[tuple[bytes, bytes, int]]:
    """(type, data, stored CRC) of every chunk after the signature."""
    found, position = [], 8
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        data = png[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", png[position + 8 + length : position + 12 + length])
        found.append((kind, data, crc))
        position += length + 12
    return found


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (1, 9), (7, 1), (150, 200), (ROWS_PER_BLOCK, 3), (ROWS_PER_BLOCK + 1, 5), (2 * ROWS_PER_BLOCK + 37, 11)],
)
def test_pillow_reads_back_exactly_the_pixels_written(shape):
    rng = np.random.default_rng(sum(shape))
    pixels = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    assert np.array_equal(decoded(encode_rgb_png(pixels)), pixels)


def test_differences_that_wrap_around_255_survive():
    # Rows alternating 0 and 255 (and a column the other way) make every Up difference wrap modulo 256.
    pixels = np.zeros((6, 4, 3), np.uint8)
    pixels[1::2] = 255
    pixels[:, 1] = 255 - pixels[:, 1]
    assert np.array_equal(decoded(encode_rgb_png(pixels)), pixels)


def test_a_flat_picture_compresses_to_almost_nothing():
    pixels = np.full((150, 200, 3), 128, np.uint8)
    png = encode_rgb_png(pixels)
    assert np.array_equal(decoded(png), pixels)
    assert len(png) < 1_000  # 90,000 bytes of pixels


def test_only_signature_header_pixels_and_end_are_written_with_valid_crcs():
    pixels = np.random.default_rng(1).integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    png = encode_rgb_png(pixels)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    found = chunks(png)
    assert [kind for kind, _, _ in found] == [b"IHDR", b"IDAT", b"IEND"]
    for kind, data, crc in found:
        assert zlib.crc32(kind + data) == crc
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", found[0][1])
    assert (width, height, depth, colour, compression, filtering, interlace) == (30, 40, 8, 2, 0, 0, 0)


def test_every_row_uses_the_up_filter():
    pixels = np.random.default_rng(2).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    (_, idat, _) = chunks(encode_rgb_png(pixels))[1]
    scanlines = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(5, 1 + 4 * 3)
    assert set(scanlines[:, 0]) == {2}
    assert np.array_equal(scanlines[0, 1:], pixels[0].ravel())  # the row above the first counts as zeros


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((4, 4), np.uint8),  # greyscale
        np.zeros((4, 4, 4), np.uint8),  # RGBA
        np.zeros((4, 4, 3), np.uint16),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((4, 0, 3), np.uint8),
    ],
)
def test_anything_but_non_empty_8_bit_rgb_is_refused(pixels):
    with pytest.raises(ValueError, match="uint8 RGB pixels|at least one pixel"):
        encode_rgb_png(pixels)
