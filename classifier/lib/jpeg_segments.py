"""Remove a JPEG's metadata without touching its pixels: the compressed stream is kept, byte for byte.

A JPEG is a sequence of marker segments, then entropy-coded scan data. Metadata lives in
its own segments: APP1 (EXIF, with the GPS position and the camera's serial number, and
XMP), APP2 (the ICC profile, also FlashPix), APP3-APP13 and APP15 (makers' notes,
Photoshop's IPTC block with captions and names), and COM (free-text comments). Dropping
them leaves every segment the decoder needs (quantisation and Huffman tables, frame and
scan headers, restart intervals, the scan data) unchanged, so the decoded pixels are
identical. Kept as well: APP0 (JFIF: the pixel aspect ratio, no personal data) and APP14
(Adobe: says whether the colours are YCbCr or RGB/CMYK, which changes the decoded colours).
Anything after the end-of-image marker (the second picture of an MPO, a phone's appended
depth map, or data hidden there) is dropped.
"""

from __future__ import annotations

SOI = b"\xff\xd8"
EOI = 0xD9
SOS = 0xDA
APP0, APP14 = 0xE0, 0xEE
COM = 0xFE
KEPT_APPLICATION_SEGMENTS = frozenset({APP0, APP14})
# Markers without a length field: TEM and the restart markers (inside scans, but tolerated between).
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class NotAJpeg(ValueError):
    """The bytes do not parse as a baseline or progressive JPEG's segments."""


def is_metadata(marker: int) -> bool:
    return marker == COM or (0xE0 <= marker <= 0xEF and marker not in KEPT_APPLICATION_SEGMENTS)


def strip_metadata(data: bytes) -> bytes:
    """The same JPEG without its metadata segments or anything after its end; raises NotAJpeg."""
    if not data.startswith(SOI):
        raise NotAJpeg("no start-of-image marker")
    out = bytearray(SOI)
    position = len(SOI)
    while True:
        marker, position = _next_marker(data, position)
        if marker == EOI:
            out += bytes((0xFF, EOI))
            return bytes(out)
        if marker in STANDALONE:
            out += bytes((0xFF, marker))
            continue
        length = _segment_length(data, position)
        segment_end = position + length
        if not is_metadata(marker):
            out += bytes((0xFF, marker)) + data[position:segment_end]
        position = segment_end
        if marker == SOS:
            scan_end = _end_of_scan(data, position)
            out += data[position:scan_end]
            position = scan_end


def _next_marker(data: bytes, position: int) -> tuple[int, int]:
    """The marker at ``position`` (fill bytes 0xFF skipped) and where its segment starts."""
    if position >= len(data) or data[position] != 0xFF:
        raise NotAJpeg(f"expected a marker at byte {position}")
    while position < len(data) and data[position] == 0xFF:
        position += 1
    if position >= len(data):
        raise NotAJpeg("cut short before the end-of-image marker")
    return data[position], position + 1


def _segment_length(data: bytes, position: int) -> int:
    if position + 2 > len(data):
        raise NotAJpeg("cut short inside a segment header")
    length = int.from_bytes(data[position : position + 2], "big")
    if length < 2 or position + length > len(data):
        raise NotAJpeg(f"a segment at byte {position} runs past the end of the file")
    return length


def _end_of_scan(data: bytes, position: int) -> int:
    """Where the entropy-coded data after a scan header ends: at the first marker that is
    neither a stuffed zero (0xFF00) nor a restart marker (0xFFD0-D7)."""
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
            raise NotAJpeg("cut short inside the scan data")
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            position += 1 if following == 0xFF else 2
            continue
        return position


ORIENTATION_TAG = 0x0112


def with_orientation(data: bytes, orientation: int) -> bytes:
    """A stripped JPEG given back the one EXIF tag that says how to turn it (1-8), and nothing else.

    The pixels stay as the sensor stored them, so the orientation must travel with them for
    a browser (and Pillow's exif_transpose) to show the picture upright."""
    if not 1 <= orientation <= 8:
        raise ValueError(f"EXIF orientation is 1-8, not {orientation}")
    # Exif header, a big-endian TIFF header, IFD0 with one SHORT entry, no next IFD.
    tiff = b"MM\x00\x2a" + (8).to_bytes(4, "big")
    entry = ORIENTATION_TAG.to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big")
    entry += orientation.to_bytes(2, "big") + b"\x00\x00"
    payload = b"Exif\x00\x00" + tiff + (1).to_bytes(2, "big") + entry + (0).to_bytes(4, "big")
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    # After JFIF's APP0 when there is one: readers expect APP0 first.
    position = len(SOI)
    if data[position : position + 2] == b"\xff\xe0":
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return data[:position] + segment + data[position:]
