"""clean_upload(): what is rejected, with which code, and what an accepted image becomes.

Every input is made here, in memory, with Pillow or as hand-written bytes.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import time
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, PngImagePlugin

from classifier.lib.imaging import CleanImage, ImageRejected, UploadLimits, clean_upload

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


# --- Helpers ---------------------------------------------------------------------


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def photo(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """An RGB image with some structure, so lossy encoders have something to keep."""
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.uint8)[np.newaxis, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, np.newaxis].repeat(width, axis=1)
    return Image.fromarray(np.dstack([x, y, 255 - x]))


def bands(mode: str, values: list, size: tuple[int, int] = (60, 40)) -> Image.Image:
    """An image of vertical bands, one per value, left to right."""
    width, height = size
    image = Image.new(mode, size)
    step = width // len(values)
    for index, value in enumerate(values):
        image.paste(value, (index * step, 0, (index + 1) * step, height))
    return image


def band_centres(count: int, size: tuple[int, int] = (60, 40)) -> list[tuple[int, int]]:
    step = size[0] // count
    return [(index * step + step // 2, size[1] // 2) for index in range(count)]


def sixteen_bit_bands(mode: str = "I;16") -> Image.Image:
    """Bands of 0, 32768 and 65535 (paste() cannot write values over 32767 into I;16)."""
    values = np.array([[0, 32768, 65535]], dtype=np.uint16).repeat(40, axis=0).repeat(20, axis=1)
    byte_order = ">u2" if mode == "I;16B" else "<u2"
    return Image.frombytes(mode, (60, 40), values.astype(byte_order).tobytes())


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header and holds no pixel data at all."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def png_chunk_types(png: bytes) -> list[bytes]:
    kinds, position = [], 8
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kinds.append(png[position + 4 : position + 8])
        position += length + 12
    return kinds


def reopen(clean: CleanImage) -> Image.Image:
    """The stored picture as a viewer shows it: decoded and turned by its orientation tag, if it kept one."""
    image = Image.open(io.BytesIO(clean.original))
    image.load()
    return ImageOps.exif_transpose(image)


def stored_metadata_free(clean: CleanImage) -> None:
    """A PNG holds the pixels only; a JPEG its own stream, with at most its orientation tag."""
    if clean.original_extension == "png":
        assert png_chunk_types(clean.original) == [b"IHDR", b"IDAT", b"IEND"]
        return
    with Image.open(io.BytesIO(clean.original)) as stored:
        assert set(stored.getexif()) <= {0x0112}
        assert not {"icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "photoshop"} & stored.info.keys()


def rejection(source, filename: str = "scan.jpg", **limits) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        clean_upload(source, UploadLimits(**limits), filename=filename)
    return caught.value


def assert_close(actual: tuple, expected: tuple, tolerance: int = 2) -> None:
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (actual, expected)


class UnreadableUpload:
    """Looks like Django's UploadedFile; reading it fails the test."""

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, *args):
        pytest.fail("the upload was read although its declared size already ruled it out")

    def seek(self, *args):
        pytest.fail("the upload was touched although its declared size already ruled it out")


class CountingStream(io.BytesIO):
    """A stream without .size that records how many bytes were read from it."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


# --- Rejections ------------------------------------------------------------------


def test_it_rejects_an_empty_file():
    rejected = rejection(b"")
    assert (rejected.code, rejected.http_status) == ("empty", 400)
    assert rejected.message == "scan.jpg is empty: the file contains no data."
    assert rejected.filename == "scan.jpg"


def test_it_rejects_an_empty_file_object():
    assert rejection(io.BytesIO(b"")).code == "empty"


def test_it_names_the_upload_plainly_when_there_is_no_filename():
    rejected = rejection(b"", filename="")
    assert rejected.message == "The uploaded file is empty: the file contains no data."
    assert str(rejected) == rejected.message


def test_it_rejects_an_oversize_upload_by_its_declared_size_without_reading_it():
    rejected = rejection(UnreadableUpload(size=int(25.3 * 1024 * 1024)))
    assert (rejected.code, rejected.http_status) == ("too_large", 413)
    assert rejected.message == "scan.jpg is 25.3 MB; the limit is 20 MB."


def test_it_rejects_oversize_bytes_and_says_how_large_they_are():
    rejected = rejection(b"\xff" * 15_000, max_bytes=10_240)
    assert (rejected.code, rejected.http_status) == ("too_large", 413)
    assert rejected.message == "scan.jpg is 14.6 KB; the limit is 10 KB."


def test_it_reads_only_one_byte_past_the_limit_of_a_stream_without_a_size():
    stream = CountingStream(encode(photo(), "PNG") + b"\0" * 5_000)
    rejected = rejection(stream, max_bytes=1_000)
    assert rejected.code == "too_large"
    assert rejected.message == "scan.jpg is larger than the limit of 1000 bytes."
    assert stream.bytes_read == 1_001


def test_it_does_not_trust_a_declared_size_that_is_too_small():
    stream = io.BytesIO(b"\0" * 5_000)
    stream.size = 10  # a client can claim anything
    assert rejection(stream, max_bytes=1_000).code == "too_large"


def test_it_does_not_say_a_file_just_over_the_limit_is_the_same_size_as_the_limit():
    limit = 20 * 1024 * 1024
    rejected = rejection(UnreadableUpload(size=limit + 1))
    assert rejected.message == "scan.jpg is larger than the limit of 20 MB."


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", id="html"),
        pytest.param(
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
            b'<rect width="64" height="64" fill="red"/></svg>',
            id="svg",
        ),
        pytest.param(b"Patient notes: lesion on the left forearm, 6 mm.\n", id="text"),
        pytest.param(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n", id="pdf"),
        pytest.param(random.Random(7).randbytes(4096), id="random-bytes"),
    ],
)
def test_it_rejects_files_that_are_not_images_even_with_a_jpg_name(content):
    rejected = rejection(content, filename="lesion.jpg")
    assert (rejected.code, rejected.http_status) == ("not_an_image", 400)
    assert rejected.message == "lesion.jpg is not an image. Please upload a JPEG, PNG, WebP, HEIC, TIFF or BMP image."


def test_it_rejects_a_zip_archive_renamed_to_jpg():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("lesion.jpg", encode(photo(), "JPEG"))
    assert rejection(archive.getvalue(), filename="lesion.jpg").code == "not_an_image"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        pytest.param(encode(photo(), "GIF"), "GIF", id="gif"),
        pytest.param(encode(photo(), "ICO"), "ICO", id="ico"),
        # A Photoshop header: version 1, 3 channels, 64 x 64, 8 bits, RGB.
        pytest.param(b"8BPS\x00\x01" + bytes(6) + struct.pack(">HIIHH", 3, 64, 64, 8, 3), "PSD", id="psd"),
        # An AVIF, the AV1 picture in an ISO media "ftyp" box: the HEIF plugin here has no AV1 decoder.
        pytest.param(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64), "AVIF", id="avif"),
    ],
)
def test_it_rejects_images_in_formats_it_does_not_accept(content, named):
    rejected = rejection(content, filename="lesion.img")
    assert (rejected.code, rejected.http_status) == ("unsupported_format", 400)
    assert rejected.message.startswith("lesion.img is in ")
    assert named in rejected.message
    assert "Please upload a JPEG, PNG, WebP, HEIC, TIFF or BMP image." in rejected.message


def test_it_rejects_a_png_claiming_100000_by_100000_pixels_quickly_and_without_decoding():
    started = time.perf_counter()
    rejected = rejection(png_header_only(100_000, 100_000), filename="bomb.png")
    assert time.perf_counter() - started < 1.0
    assert (rejected.code, rejected.http_status) == ("too_many_pixels", 400)
    assert rejected.message.startswith("bomb.png ")
    assert "50 megapixels" in rejected.message


def test_it_rejects_too_many_pixels_from_the_header_before_decoding_anything():
    # There is no pixel data at all: decoding would have failed as corrupt.
    rejected = rejection(png_header_only(10_000, 6_000), filename="big.png")
    assert rejected.code == "too_many_pixels"
    assert rejected.message == "big.png is 10000 x 6000 pixels (60 megapixels); the limit is 50 megapixels."


def test_it_rejects_too_many_pixels_against_a_configured_limit():
    rejected = rejection(encode(photo((64, 48)), "PNG"), max_pixels=3_000)
    assert rejected.message == "scan.jpg is 64 x 48 pixels (3,072 pixels); the limit is 3,000 pixels."


def test_pillows_decompression_bomb_warning_cannot_escape_when_warnings_are_errors():
    # 100 megapixels: over Pillow's warning threshold, under its error threshold.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rejected = rejection(png_header_only(10_000, 10_000))
    assert rejected.code == "too_many_pixels"


def test_it_rejects_an_image_smaller_than_the_minimum_side():
    rejected = rejection(encode(photo((31, 100)), "PNG"))
    assert (rejected.code, rejected.http_status) == ("too_small", 400)
    assert rejected.message == "scan.jpg is 31 x 100 pixels; images must be at least 32 pixels wide and 32 pixels high."


def test_it_rejects_a_truncated_jpeg():
    whole = encode(photo((256, 256)), "JPEG", quality=95)
    rejected = rejection(whole[: len(whole) * 2 // 3])
    assert (rejected.code, rejected.http_status) == ("corrupt", 400)
    assert rejected.message == "scan.jpg is not a complete image: the file is truncated or corrupt."


@pytest.mark.parametrize("image_format", ["PNG", "WEBP", "TIFF", "BMP"])
def test_it_rejects_other_truncated_images_as_corrupt(image_format):
    whole = encode(photo((256, 256)), image_format)
    assert rejection(whole[: len(whole) * 2 // 3]).code == "corrupt"


def test_it_calls_a_jpeg_cut_off_inside_its_header_corrupt_rather_than_not_an_image():
    assert rejection(encode(photo(), "JPEG")[:20]).code == "corrupt"


def test_it_rejects_a_png_whose_compressed_pixels_are_damaged():
    whole = bytearray(encode(photo((128, 128)), "PNG"))
    pixels_start = whole.index(b"IDAT") + 4
    whole[pixels_start + 40 : pixels_start + 60] = bytes(20)
    assert rejection(bytes(whole)).code == "corrupt"


def test_it_leaves_load_truncated_images_off():
    whole = encode(photo((256, 256)), "JPEG")
    rejection(whole[: len(whole) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# Some of the ways Pillow's plugins report a damaged file.
PILLOW_ERRORS = [SyntaxError(), ValueError(), struct.error(), EOFError(), OSError(), IndexError(), KeyError(1)]


@pytest.mark.parametrize("error", PILLOW_ERRORS, ids=lambda error: type(error).__name__)
def test_any_error_pillow_raises_while_decoding_becomes_a_corrupt_rejection(monkeypatch, error):
    def broken_load(self):
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken_load)
    assert rejection(encode(photo(), "PNG")).code == "corrupt"


@pytest.mark.parametrize("error", PILLOW_ERRORS, ids=lambda error: type(error).__name__)
def test_any_error_pillow_raises_while_reading_the_header_becomes_a_rejection(monkeypatch, error):
    def broken_open(self):
        raise error

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "_open", broken_open)
    assert rejection(encode(photo(), "PNG")).code == "corrupt"  # it starts like a PNG


def test_running_out_of_memory_is_not_blamed_on_the_file(monkeypatch):
    def no_memory(self):
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_memory)
    with pytest.raises(MemoryError):
        clean_upload(encode(photo(), "PNG"))


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "TIFF", "BMP"])
def test_damaged_files_only_ever_end_in_an_image_or_a_rejection(image_format):
    whole = encode(photo((48, 48)), image_format)
    shuffle = random.Random(image_format)
    damaged = [whole[:cut] for cut in range(1, len(whole), max(1, len(whole) // 25))]
    for _ in range(25):
        flipped = bytearray(whole)
        flipped[shuffle.randrange(len(whole))] ^= 1 << shuffle.randrange(8)
        damaged.append(bytes(flipped))
    for content in damaged:
        try:
            clean_upload(content)
        except ImageRejected:
            pass


# --- Accepted images ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "params", "lossless"),
    [
        ("JPEG", {"quality": 95}, False),
        ("PNG", {}, True),
        ("WEBP", {"lossless": True}, True),
        ("WEBP", {"quality": 90}, False),
        ("TIFF", {}, True),
        ("TIFF", {"compression": "tiff_lzw"}, True),
        ("BMP", {}, True),
    ],
)
def test_each_accepted_format_is_stored_losslessly_at_the_same_size(image_format, params, lossless):
    original = photo((64, 48))
    content = encode(original, image_format, **params)
    clean = clean_upload(content, filename="lesion")
    assert (clean.width, clean.height, clean.source_format) == (64, 48, image_format)
    with Image.open(io.BytesIO(clean.original)) as stored:
        # A JPEG keeps its own compressed stream; everything else becomes an RGB PNG.
        assert stored.format == ("JPEG" if image_format == "JPEG" else "PNG")
    output = reopen(clean)
    assert (output.mode, output.size) == ("RGB", (64, 48))
    if lossless:
        assert output.tobytes() == original.tobytes()
    else:
        difference = np.abs(np.asarray(output, dtype=int) - np.asarray(original, dtype=int))
        assert difference.mean() < 4


def test_it_accepts_the_multi_picture_jpeg_that_phones_write_and_keeps_the_first_picture():
    first, second = Image.new("RGB", (64, 48), RED), Image.new("RGB", (64, 48), BLUE)
    content = encode(first, "MPO", save_all=True, append_images=[second])
    clean = clean_upload(content)
    assert clean.source_format == "MPO"
    assert_close(reopen(clean).getpixel((32, 24)), RED, tolerance=4)


def test_it_accepts_a_file_object_such_as_djangos_uploaded_file():
    content = encode(photo(), "PNG")
    upload = io.BytesIO(content)
    upload.size = len(content)
    upload.seek(0, io.SEEK_END)  # as if something had read it already
    clean = clean_upload(upload, filename="lesion.png")
    assert (clean.width, clean.height) == (64, 48)


def test_the_output_png_holds_only_the_pixels():
    assert png_chunk_types(clean_upload(encode(photo(), "WEBP")).original) == [b"IHDR", b"IDAT", b"IEND"]


def p_with_transparent_index() -> Image.Image:
    image = bands("P", [0, 1])
    image.putpalette([*BLUE, *RED])
    image.info["transparency"] = 0
    return image


def p_with_palette() -> Image.Image:
    image = bands("P", [0, 1, 2])
    image.putpalette([*RED, 0, 255, 0, *BLUE])
    return image


def with_info(image: Image.Image, **info) -> Image.Image:
    image.info.update(info)
    return image


# (how it is made, the format it is saved in, the mode it must reopen as, the pixels it must become)
MODE_CASES = {
    "1-bit": (lambda: bands("1", [0, 1]), "PNG", "1", [(0, 0, 0), WHITE]),
    "L": (lambda: bands("L", [0, 100, 255]), "PNG", "L", [(0, 0, 0), (100, 100, 100), WHITE]),
    "LA-on-white": (
        lambda: bands("LA", [(100, 255), (100, 0), (0, 128)]),
        "PNG",
        "LA",
        [(100, 100, 100), WHITE, (127, 127, 127)],
    ),
    "P": (p_with_palette, "PNG", "P", [RED, (0, 255, 0), BLUE]),
    "P-transparent": (p_with_transparent_index, "PNG", "P", [WHITE, RED]),
    "RGBA-on-white": (
        lambda: bands("RGBA", [(255, 0, 0, 0), (*BLUE, 255), (0, 0, 0, 128)]),
        "PNG",
        "RGBA",
        [WHITE, BLUE, (127, 127, 127)],
    ),
    "RGB-colour-key": (
        lambda: with_info(bands("RGB", [RED, BLUE]), transparency=RED),
        "PNG",
        "RGB",
        [WHITE, BLUE],
    ),
    "CMYK-jpeg": (lambda: bands("CMYK", [(0, 255, 255, 0), (0, 0, 0, 255)]), "JPEG", "CMYK", [RED, (0, 0, 0)]),
    "CMYK-tiff": (lambda: bands("CMYK", [(0, 255, 255, 0), (0, 0, 0, 0)]), "TIFF", "CMYK", [RED, WHITE]),
    "YCbCr": (lambda: bands("RGB", [RED, BLUE]).convert("YCbCr"), "TIFF", "YCbCr", [RED, BLUE]),
    "I;16": (sixteen_bit_bands, "PNG", "I;16", [(0, 0, 0), (128, 128, 128), WHITE]),
    "I;16-tiff": (sixteen_bit_bands, "TIFF", "I;16", [(0, 0, 0), (128, 128, 128), WHITE]),
    "I;16B": (lambda: sixteen_bit_bands("I;16B"), "TIFF", "I;16B", [(0, 0, 0), (128, 128, 128), WHITE]),
    "I-32-bit": (lambda: bands("I", [-1000, 0, 1000]), "TIFF", "I", [(0, 0, 0), (128, 128, 128), WHITE]),
    "F-float": (lambda: bands("F", [0.0, 0.25, 1.0]), "TIFF", "F", [(0, 0, 0), (64, 64, 64), WHITE]),
    "F-with-nan": (
        lambda: bands("F", [float("nan"), 2.0, 4.0]),
        "TIFF",
        "F",
        [(0, 0, 0), (0, 0, 0), WHITE],
    ),
}


@pytest.mark.parametrize(("make", "image_format", "mode", "expected"), MODE_CASES.values(), ids=MODE_CASES.keys())
def test_every_pixel_mode_ends_up_as_8_bit_rgb_with_the_right_values(make, image_format, mode, expected):
    content = encode(make(), image_format)
    assert Image.open(io.BytesIO(content)).mode == mode  # the case really tests this mode
    clean = clean_upload(content)
    output = reopen(clean)
    assert (output.mode, output.size) == ("RGB", (60, 40))
    tolerance = 8 if image_format == "JPEG" else 2
    for position, colour in zip(band_centres(len(expected)), expected, strict=True):
        assert_close(output.getpixel(position), colour, tolerance)
    stored_metadata_free(clean)


def test_a_16_bit_grey_image_is_scaled_rather_than_clipped_to_white():
    output = reopen(clean_upload(encode(sixteen_bit_bands(), "PNG")))
    assert [output.getpixel((x, 0)) for x in (10, 30, 50)] == [(0, 0, 0), (128, 128, 128), WHITE]


def test_it_rejects_a_colour_encoding_it_cannot_convert_faithfully():
    rejected = rejection(encode(Image.new("LAB", (40, 40), (50, 0, 0)), "TIFF"), filename="lab.tif")
    assert (rejected.code, rejected.http_status) == ("unsupported_format", 400)
    assert rejected.message.startswith("lab.tif stores its colours as LAB")


# --- Metadata and orientation --------------------------------------------------------


def exif_with_gps(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "DermaCam"  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"  # GPSLatitudeRef
    gps[2] = (51.0, 30.0, 0.0)  # GPSLatitude
    gps[3] = "W"
    gps[4] = (0.0, 7.0, 0.0)
    return exif


FAKE_ICC = b"\0\0\0\x80" + b"not a real profile, but it travels like one" * 3
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def assert_no_metadata(clean: CleanImage) -> None:
    stored_metadata_free(clean)
    output = Image.open(io.BytesIO(clean.original))
    assert b"DermaCam" not in clean.original and b"Mrs Smith" not in clean.original
    if clean.original_extension == "jpg":
        # JFIF's APP0 (pixel density) stays; of the EXIF only the orientation, when the picture turns.
        assert set(output.getexif()) <= {0x0112} and not output.getexif().get_ifd(0x8825)
        return
    assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "dpi", "comment"} & output.info.keys()
    assert dict(output.getexif()) == {}
    assert output.text == {}


def test_it_strips_exif_with_gps_the_icc_profile_xmp_and_comments_from_a_jpeg():
    content = encode(
        photo(), "JPEG", exif=exif_with_gps(), icc_profile=FAKE_ICC, xmp=XMP, comment=b"Mrs Smith", dpi=(300, 300)
    )
    uploaded = Image.open(io.BytesIO(content))
    assert uploaded.getexif().get_ifd(0x8825)  # the input has them
    assert uploaded.info["icc_profile"] == FAKE_ICC
    assert_no_metadata(clean_upload(content))


def test_it_strips_text_chunks_exif_and_the_icc_profile_from_a_png():
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Dr Jones")
    text.add_text("Comment", "patient 1234, left forearm", zip=True)
    text.add_itxt("Description", "naevus", lang="en")
    content = encode(photo(), "PNG", pnginfo=text, exif=exif_with_gps(), icc_profile=FAKE_ICC, dpi=(300, 300))
    assert Image.open(io.BytesIO(content)).text  # the input has them
    assert_no_metadata(clean_upload(content))


@pytest.mark.parametrize("image_format", ["WEBP", "TIFF"])
def test_it_strips_metadata_from_webp_and_tiff(image_format):
    content = encode(photo(), image_format, exif=exif_with_gps(), icc_profile=FAKE_ICC)
    assert_no_metadata(clean_upload(content))


def test_it_applies_exif_orientation_6_so_a_portrait_photo_comes_out_as_shown():
    image = Image.new("RGB", (40, 60), BLUE)
    image.paste(RED, (0, 0, 40, 10))  # the top of the image as stored
    clean = clean_upload(encode(image, "JPEG", quality=95, exif=exif_with_gps(orientation=6)))
    assert (clean.width, clean.height) == (60, 40)
    output = reopen(clean)
    # Orientation 6 means "turn 90 degrees clockwise to view": the stored top is now on the right.
    assert_close(output.getpixel((55, 20)), RED, tolerance=8)
    assert_close(output.getpixel((5, 20)), BLUE, tolerance=8)
    assert_no_metadata(clean)


def test_an_unreadable_orientation_does_not_cost_the_upload(monkeypatch):
    def broken_exif(image, **kwargs):
        raise SyntaxError("not a TIFF file")

    monkeypatch.setattr(ImageOps, "exif_transpose", broken_exif)
    clean = clean_upload(encode(photo((40, 60)), "JPEG", exif=exif_with_gps(orientation=6)))
    assert (clean.width, clean.height) == (40, 60)


# --- Identity and animation --------------------------------------------------------


def test_sha256_is_of_the_original_bytes():
    content = encode(photo(), "JPEG", exif=exif_with_gps())
    clean = clean_upload(content)
    assert clean.sha256 == hashlib.sha256(content).hexdigest()
    assert clean.sha256 != hashlib.sha256(clean.original).hexdigest()


def test_identical_bytes_give_identical_sha256_however_they_arrive():
    content = encode(photo(), "PNG")
    as_bytes = clean_upload(content)
    as_file = clean_upload(io.BytesIO(content))
    assert as_bytes.sha256 == as_file.sha256
    assert as_bytes.original == as_file.original


def test_the_same_picture_with_different_metadata_is_a_different_upload():
    first = clean_upload(encode(photo(), "PNG"))
    second = clean_upload(encode(photo(), "PNG", dpi=(300, 300)))
    assert first.sha256 != second.sha256
    assert first.original == second.original


@pytest.mark.parametrize(
    ("image_format", "params"),
    [
        ("PNG", {"duration": 100, "loop": 0}),
        ("WEBP", {"duration": 100, "loop": 0, "lossless": True}),
        ("TIFF", {}),
    ],
    ids=["animated-png", "animated-webp", "multi-page-tiff"],
)
def test_it_takes_the_first_frame_of_an_animation_or_a_multi_page_file(image_format, params):
    first, second = Image.new("RGB", (64, 48), RED), Image.new("RGB", (64, 48), BLUE)
    content = encode(first, image_format, save_all=True, append_images=[second], **params)
    assert Image.open(io.BytesIO(content)).n_frames == 2  # the input really has two frames
    output = reopen(clean_upload(content))
    assert output.size == (64, 48)
    assert output.getpixel((32, 24)) == RED
