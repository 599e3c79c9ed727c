"""A minimal PNG writer for the pixels lesionsite stores: 8-bit RGB, nothing else.

Why not Pillow's writer: for every row it tries four PNG filters (none, Sub, Up and
Paeth; Average only with optimize=True, libImaging/ZipEncode.c) and keeps the one
that looks most compressible (libpng's heuristic). That search was two thirds
of the web process's work per uploaded picture, and its files took the worker twice
as long to decode as the ones written here. Here every
row uses the "Up" filter (its difference to the row above), computed by numpy, and
zlib's run-length strategy, which suits the runs of small differences that leaves.
On 50 HAM10000 pictures (200x150), 0.83 against 2.65 ms to encode, 0.54 against 1.15 ms
for Pillow to decode, and files ~2 % smaller (docs/PERFORMANCE.md has the measurement).

What is written is the signature, IHDR, IDAT and IEND: the pixels, with no chunk
that could carry metadata (no EXIF, no ICC profile, no text).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
UP_FILTER = 2  # PNG filter type 2: each byte minus the byte above it, modulo 256
ZLIB_LEVEL = 1  # lossless at any level; the upload request waits for it
ROWS_PER_BLOCK = 256  # rows filtered and compressed at a time: bounded memory for large pictures


def encode_rgb_png(pixels: np.ndarray) -> bytes:
    """The PNG file of an (height, width, 3) uint8 RGB array."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (height, width, 3) uint8 RGB pixels, got {pixels.dtype} {pixels.shape}")
    height, width, _ = pixels.shape
    if not height or not width:
        raise ValueError("a PNG needs at least one pixel")
    rows = pixels.reshape(height, width * 3)

    compressor = zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    compressed = []
    for start in range(0, height, ROWS_PER_BLOCK):
        block = rows[start : start + ROWS_PER_BLOCK]
        scanlines = np.empty((len(block), width * 3 + 1), np.uint8)
        scanlines[:, 0] = UP_FILTER
        # The row above the first row of the picture counts as zeros.
        above = rows[start - 1 : start - 1 + len(block)] if start else np.vstack([np.zeros_like(rows[:1]), block[:-1]])
        np.subtract(block, above, out=scanlines[:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG wants
        compressed.append(compressor.compress(scanlines.data))
    compressed.append(compressor.flush())

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, filters, no interlace
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(compressed)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
