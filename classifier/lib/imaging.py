"""Check an uploaded image and keep its pixels so that no metadata survives.

The web process calls clean_upload() on every uploaded file before anything is
stored. It decodes the whole image, turns anything that is not an image we accept
into an ImageRejected with a message a clinician can act on, and returns the
picture without metadata (no EXIF, so no GPS position, no ICC profile, no XMP, no
text chunks, no comments): a JPEG as its own compressed stream with the metadata
segments cut out (no pixel changes, and the size of the upload), anything else as
an 8-bit RGB PNG of the upright pixels; beside it a working copy of bounded size
for the worker and a thumbnail for lists.

Only the standard library, Pillow and numpy are used, so this is a plain function
tested without Django.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import BinaryIO

import numpy as np
import pillow_heif
from PIL import Image, ImageFile, ImageOps

from classifier.lib.jpeg_segments import ORIENTATION_TAG, NotAJpeg, strip_metadata, with_orientation
from classifier.lib.png import encode_rgb_png

# HEIC/HEIF, what phones and their dermatoscope attachments save, through pillow-heif's
# Pillow plugin (libheif with libde265, kept up to date by its wheels). Only the primary
# picture is read: the thumbnails, depth maps and auxiliary images a HEIF may carry are
# never decoded. libheif applies the file's rotation and mirroring while decoding and
# reports the EXIF orientation as 1, so the picture is not turned twice.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# The only Pillow plugins that ever parse an upload: naming them in Image.open()
# keeps every other decoder (and its bugs) away from untrusted bytes. MPO, the
# multi-picture JPEG that phones write, is opened by the JPEG plugin; it must not
# be named here, because Image.open() raises KeyError for a format it cannot open.
PILLOW_DECODERS = ("JPEG", "PNG", "WEBP", "HEIF", "TIFF", "BMP")
# HEIC: how the signatures below name a HEIF whose brand says HEVC (the HEIF plugin opens both).
ACCEPTED_FORMATS = frozenset({*PILLOW_DECODERS, "MPO", "HEIC"})
ACCEPTED_IN_WORDS = "JPEG, PNG, WebP, HEIC, TIFF or BMP"

HTTP_STATUS = {
    "empty": 400,
    "too_large": 413,
    "not_an_image": 400,
    "unsupported_format": 400,
    # 400, not 413: the request is small, it is the picture inside that is too big,
    # and a client that sees 413 would try sending fewer bytes, which cannot help.
    "too_many_pixels": 400,
    "too_small": 400,
    "corrupt": 400,
}

# Pixel modes we know how to turn into RGB faithfully. Pillow "converts" others,
# such as LAB, by copying channels, which gives wrong colours without an error.
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
WIDE_MODES = frozenset({"I", "F"})  # 32-bit integer and float greyscale
CONVERTIBLE_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})
WHITE = (255, 255, 255, 255)

MB = 1024 * 1024

# The longest side: sharp at twice the lists' 48-56 px cells (high-density
# screens), and a few kilobytes as WebP.
THUMBNAIL_SIDE = 256
# WebP's fastest method: the upload request waits for it, and at this size the
# slower methods save a few hundred bytes.
WEBP_OPTIONS = {"quality": 80, "method": 0}
THUMBNAIL_CONTENT_TYPE = "image/webp"


def make_thumbnail(image: Image.Image) -> bytes:
    """An RGB picture shrunk to fit THUMBNAIL_SIDE (never enlarged), as WebP bytes."""
    scale = min(1.0, THUMBNAIL_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: shrink by whole factors first, then resample; as good as a full
    # resample to the eye and several times faster on a large picture.
    small = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0) if scale < 1 else image
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, "WEBP", **WEBP_OPTIONS)
    return buffer.getvalue()


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 20 * MB
    max_pixels: int = 50_000_000  # width * height; guards against decompression bombs
    min_side: int = 32  # smaller images have nothing for the model to see


DEFAULT_LIMITS = UploadLimits()


class ImageRejected(Exception):
    """An upload we will not store; `message` is written to be shown as it is."""

    def __init__(self, code: str, message: str, filename: str = "") -> None:
        super().__init__(code, message, filename)
        self.code = code  # stable and machine-readable, e.g. "too_large"
        self.message = message
        self.filename = filename
        self.http_status = HTTP_STATUS[code]

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class CleanImage:
    sha256: str  # hex digest of the bytes as uploaded: identity for de-duplication
    # The picture without metadata, losslessly: a JPEG's own compressed stream with its metadata
    # segments removed (classifier.lib.jpeg_segments; only its orientation tag kept, when it has
    # one to turn), anything else as an 8-bit RGB PNG of the upright pixels.
    original: bytes
    original_extension: str  # "jpg" or "png"
    width: int  # upright
    height: int
    source_format: str  # Pillow's name for the upload's format, e.g. "JPEG"
    thumbnail: bytes  # the small WebP that lists show (classifier.thumbnails)
    # What the worker reads: the upright pixels at most WORKING_SIDE a side, as a JPEG; None
    # when the picture is no larger (the original is read then).
    working: bytes | None = None
    # When the camera says it was taken (EXIF DateTimeOriginal, read before the metadata is
    # dropped); naive (the camera's clock) unless the file gives its UTC offset. None: not said.
    taken_at: datetime | None = None


def clean_upload(
    source: bytes | BinaryIO,
    limits: UploadLimits = DEFAULT_LIMITS,
    filename: str = "",
) -> CleanImage:
    """Decode the whole upload and return its pixels re-encoded, or raise ImageRejected.

    `source` is the uploaded bytes or a binary file object such as Django's
    UploadedFile, whose `.size` lets an oversize file be refused before reading it.
    `filename` names the file in messages and in ImageRejected.filename; it is
    never used to guess the format, which comes from the bytes alone.
    """
    data = _read_upload(source, limits, filename)
    sha256 = hashlib.sha256(data).hexdigest()

    with _open(data, limits, filename) as image:
        source_format = image.format or ""
        _check_dimensions(image.size, limits, filename)
        _decode(image, filename)
        # After decoding (a PNG's EXIF may follow its pixels, and reading it would decode them with
        # the errors swallowed), before turning upright (which rewrites the EXIF).
        taken_at = exif_taken_at(image)
        orientation = _orientation(image)
        keeps_stream = source_format in JPEG_FORMATS and image.mode in JPEG_STREAM_MODES
        _turn_upright(image)
        rgb = _to_rgb(image, filename)

    original, extension = _without_metadata(data, orientation, rgb) if keeps_stream else (_encode_png(rgb), "png")
    return CleanImage(
        sha256=sha256,
        original=original,
        original_extension=extension,
        width=rgb.width,
        height=rgb.height,
        source_format=source_format,
        thumbnail=make_thumbnail(rgb),  # from the decoded pixels, not by decoding a stored file again
        working=make_working_copy(rgb),
        taken_at=taken_at,
    )


# --- What is stored -----------------------------------------------------------------

# JPEGs whose compressed stream is kept (metadata segments removed): RGB and greyscale ones,
# which every browser shows as the camera meant. A CMYK JPEG's colours depend on a profile we
# drop, so it is re-encoded as RGB PNG like every other format.
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
JPEG_STREAM_MODES = frozenset({"RGB", "L"})
# The working copy's longest side: 5x the model's training scale (150 px on the short side),
# so any geometry a model card may name is read from it without enlarging; a 12 MP picture's
# copy is ~4 % of its pixels, so the worker never decodes a camera's full resolution.
WORKING_SIDE = 1024
# Quality 95 without chroma subsampling: at the model's scale (downscaled ~5x more) the
# difference from the original is below one grey level (tests/test_stored_pictures.py).
WORKING_JPEG_OPTIONS = {"quality": 95, "subsampling": 0}
# Bilinear, as training.preprocessing.RESAMPLE: antialiased when shrinking, one step.
WORKING_RESAMPLE = Image.Resampling.BILINEAR


def make_working_copy(rgb: Image.Image) -> bytes | None:
    """The upright picture at most WORKING_SIDE a side as JPEG bytes; None when it is no larger."""
    scale = WORKING_SIDE / max(rgb.size)
    if scale >= 1.0:
        return None
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    out = io.BytesIO()
    rgb.resize(size, WORKING_RESAMPLE).save(out, format="JPEG", **WORKING_JPEG_OPTIONS)
    return out.getvalue()


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # an unreadable EXIF block: as _turn_upright, nothing to turn
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _without_metadata(data: bytes, orientation: int, rgb: Image.Image) -> tuple[bytes, str]:
    """The JPEG's own stream without its metadata (and its orientation tag when it turns), or a PNG
    of the decoded pixels for the rare JPEG whose segments do not parse though Pillow read it."""
    try:
        stream = strip_metadata(data)
    except NotAJpeg:
        return _encode_png(rgb), "png"
    return (stream if orientation == 1 else with_orientation(stream, orientation)), "jpg"


# --- When it was taken ------------------------------------------------------------

EXIF_IFD = 0x8769  # the Exif sub-IFD, where the capture tags are
DATE_TIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011
# Earlier dates come from cameras whose clock was never set (1970, 1980), not from a
# digital dermatoscope.
EARLIEST_TAKEN_AT = datetime(1990, 1, 1)


def exif_taken_at(image: Image.Image) -> datetime | None:
    """EXIF DateTimeOriginal, or None when it is absent, unreadable or before 1990.

    Aware when OffsetTimeOriginal gives the camera's UTC offset, naive otherwise; whether
    it lies in the future is for the caller to judge, who knows the time and time zone.
    """
    try:
        capture = image.getexif().get_ifd(EXIF_IFD)
        raw = capture.get(DATE_TIME_ORIGINAL)
        if not isinstance(raw, str):
            return None
        taken = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except MemoryError:
        raise
    except Exception:
        return None  # a broken EXIF block costs the date, never the upload
    if taken < EARLIEST_TAKEN_AT:
        return None
    offset = _utc_offset(capture.get(OFFSET_TIME_ORIGINAL))
    return taken.replace(tzinfo=offset) if offset is not None else taken


def _utc_offset(raw) -> timezone | None:
    """'+02:00' → UTC+2; anything else → None."""
    if not isinstance(raw, str):
        return None
    text = raw.strip("\x00 ")
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":" or not (text[1:3] + text[4:]).isdigit():
        return None
    minutes = int(text[1:3]) * 60 + int(text[4:])
    if minutes > 14 * 60:
        return None
    return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes))


# --- Reading the upload -----------------------------------------------------


def _read_upload(source: bytes | BinaryIO, limits: UploadLimits, filename: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        size_known = True
    else:
        declared = getattr(source, "size", None)
        if isinstance(declared, int) and declared > limits.max_bytes:
            raise _too_large(filename, declared, limits)
        _rewind(source)
        # One byte more than allowed shows the file is too large without reading
        # all of it, whatever `.size` claimed (or when there is none).
        data = _read_at_most(source, limits.max_bytes + 1)
        size_known = False

    if not data:
        raise _rejection("empty", filename, "is empty: the file contains no data.")
    if len(data) > limits.max_bytes:
        raise _too_large(filename, len(data) if size_known else None, limits)
    return data


def _rewind(source: BinaryIO) -> None:
    # Django's own ImageField validation reads the file and may leave it anywhere;
    # we always want the whole upload. A stream that cannot seek is read as it is.
    try:
        source.seek(0)
    except (AttributeError, OSError, ValueError):
        pass


def _read_at_most(source: BinaryIO, limit: int) -> bytes:
    # read(n) may return fewer bytes than asked for before the end of a stream.
    chunks = []
    remaining = limit
    while remaining > 0:
        chunk = source.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# --- Identifying and decoding ------------------------------------------------


def _open(data: bytes, limits: UploadLimits, filename: str) -> ImageFile.ImageFile:
    """Parse the header only; nothing is decoded yet."""
    try:
        return Image.open(io.BytesIO(data), formats=PILLOW_DECODERS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Pillow's own guard fires while opening, for images far beyond its limit
        # (and the warning too, where warnings are turned into errors). By default
        # our limit is below Pillow's, so such an image is over ours as well.
        predicate = f"has too many pixels to process safely; the limit is {_pixels_text(limits.max_pixels)}."
        raise _rejection("too_many_pixels", filename, predicate) from error
    except MemoryError:
        raise  # the server is short of memory; that is not the file's fault
    except Exception as error:
        # UnidentifiedImageError mostly, but a plugin may raise ValueError, OSError,
        # EOFError and more for a malformed header: all mean we cannot read it.
        raise _unreadable(data, filename) from error


def _unreadable(data: bytes, filename: str) -> ImageRejected:
    """Choose the most helpful rejection for bytes that Pillow would not open."""
    sniffed = _sniff_format(data)
    if sniffed in ACCEPTED_FORMATS:
        # It starts like a JPEG (say), but its header is broken or cut short.
        return _corrupt(filename)
    if sniffed is not None:
        predicate = f"is in {sniffed} format, which is not accepted. Please upload a {ACCEPTED_IN_WORDS} image."
        return _rejection("unsupported_format", filename, predicate)
    predicate = f"is not an image. Please upload a {ACCEPTED_IN_WORDS} image."
    return _rejection("not_an_image", filename, predicate)


# Magic numbers, used only to word the rejection of a file Pillow has refused. We
# match signatures rather than open the file again with every Pillow plugin, so no
# decoder outside PILLOW_DECODERS ever parses an upload. This also names AVIF, which
# the HEIF plugin here cannot decode (its wheels carry no AV1 decoder).
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
# ISO media files ("....ftyp" then a brand) hold HEIC and AVIF, and videos too.
_FTYP_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"hevc": "HEIC",
    b"hevx": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}


def _sniff_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12])
    for prefix, name in _SIGNATURES:
        if data.startswith(prefix):
            return name
    return None


def _check_dimensions(size: tuple[int, int], limits: UploadLimits, filename: str) -> None:
    """Refuse from the header alone, before a single pixel is allocated."""
    width, height = size
    pixels = width * height
    if pixels > limits.max_pixels:
        actual, limit = _pixels_text(pixels), _pixels_text(limits.max_pixels)
        if actual == limit:  # rounding hid the difference
            predicate = f"is {width} x {height} pixels, just over the limit of {limit}."
        else:
            predicate = f"is {width} x {height} pixels ({actual}); the limit is {limit}."
        raise _rejection("too_many_pixels", filename, predicate)
    if min(width, height) < limits.min_side:
        predicate = (
            f"is {width} x {height} pixels; images must be at least "
            f"{limits.min_side} pixels wide and {limits.min_side} pixels high."
        )
        raise _rejection("too_small", filename, predicate)


def _decode(image: ImageFile.ImageFile, filename: str) -> None:
    # The first frame only: Image.open() leaves animated PNG and WebP and
    # multi-page TIFF there. ImageFile.LOAD_TRUNCATED_IMAGES stays False, so a
    # file cut short fails here instead of being padded with grey.
    try:
        image.load()
    except MemoryError:
        raise
    except Exception as error:
        # Pillow reports damage as OSError, SyntaxError, ValueError, struct.error,
        # EOFError, IndexError... and the list changes between releases. Only
        # Pillow runs in this block, so whatever it raises is the file's fault.
        raise _corrupt(filename) from error


def _turn_upright(image: Image.Image) -> None:
    """Apply the EXIF orientation, so the pixels look as the clinician saw them."""
    try:
        # In place: when there is nothing to turn, this costs no copy of the pixels.
        ImageOps.exif_transpose(image, in_place=True)
    except MemoryError:
        raise
    except Exception:
        # The pixels decoded fine; only the orientation hint is unreadable. That
        # should not cost the clinician the upload, so the image stays as stored.
        pass


# --- Converting to 8-bit RGB ---------------------------------------------------


def _to_rgb(image: Image.Image, filename: str) -> Image.Image:
    if image.mode in SIXTEEN_BIT_MODES:
        image = _sixteen_bit_to_grey(image)
    elif image.mode in WIDE_MODES:
        image = _stretch_to_grey(image)
    elif image.mode not in CONVERTIBLE_MODES:
        predicate = (
            f"stores its colours as {image.mode}, which is not supported. "
            "Please save it as an ordinary RGB JPEG or PNG and upload that."
        )
        raise _rejection("unsupported_format", filename, predicate)

    # Also true for palette, greyscale and RGB images with a transparent colour.
    if image.has_transparency_data:
        # Transparent areas become white, the usual background of a viewer,
        # rather than whatever colour happens to sit under a zero alpha.
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, WHITE)
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _sixteen_bit_to_grey(image: Image.Image) -> Image.Image:
    # convert("L") clips 16-bit values to 255, which turns most images white.
    # Dividing by 257 maps 0..65535 onto 0..255 exactly; the + 128 rounds
    # (32768 -> 128) where >> 8 would truncate.
    values = np.asarray(image).astype(np.uint32)
    return Image.fromarray(((values + 128) // 257).astype(np.uint8))


def _stretch_to_grey(image: Image.Image) -> Image.Image:
    """Map the range the data actually uses onto 0..255.

    32-bit integer and float images have no fixed white point (a float image may
    hold 0..1, or a temperature), so the darkest value becomes black and the
    brightest white. float32 is precise enough for an 8-bit result and takes
    half the memory of float64.
    """
    values = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        return Image.new("L", image.size, 0)
    low = float(values[finite].min())
    high = float(values[finite].max())
    values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
    if high > low:
        values = (values - low) * (255.0 / (high - low))
    else:
        # A flat image has no range to stretch: keep its value where it fits.
        values = np.full_like(values, min(max(low, 0.0), 255.0))
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def _encode_png(rgb: Image.Image) -> bytes:
    # Our own writer (classifier.lib.png), not Pillow's: it writes IHDR, IDAT and IEND
    # only, so nothing from the upload's .info (ICC profile, EXIF, text) can follow
    # the pixels, and it is ~3x faster inside the upload request.
    return encode_rgb_png(np.asarray(rgb))


# --- Rejections -----------------------------------------------------------------


def _rejection(code: str, filename: str, predicate: str) -> ImageRejected:
    """Every message starts with the file's name, so the clinician knows which one."""
    subject = filename or "The uploaded file"
    return ImageRejected(code, f"{subject} {predicate}", filename)


def _corrupt(filename: str) -> ImageRejected:
    predicate = "is not a complete image: the file is truncated or corrupt."
    return _rejection("corrupt", filename, predicate)


def _too_large(filename: str, size: int | None, limits: UploadLimits) -> ImageRejected:
    limit = _bytes_text(limits.max_bytes)
    if size is None or _bytes_text(size) == limit:  # unknown, or rounding hid it
        predicate = f"is larger than the limit of {limit}."
    else:
        predicate = f"is {_bytes_text(size)}; the limit is {limit}."
    return _rejection("too_large", filename, predicate)


def _bytes_text(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < MB:
        return f"{_one_decimal(count / 1024)} KB"
    return f"{_one_decimal(count / MB)} MB"


def _pixels_text(count: int) -> str:
    if count < 1_000_000:
        return f"{count:,} pixels"
    return f"{_one_decimal(count / 1_000_000)} megapixels"


def _one_decimal(value: float) -> str:
    return f"{value:,.1f}".removesuffix(".0")
