"""HEIC/HEIF uploads, what phones save: decoded, turned upright, stripped of metadata like every other format."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from PIL import Image

from classifier.lib.imaging import ImageRejected, clean_upload
from tests.test_imaging import BLUE, RED, assert_close, assert_no_metadata, exif_with_gps, photo, reopen

EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 0x9003


def heic(image: Image.Image, exif: Image.Exif | None = None) -> bytes:
    out = io.BytesIO()
    image.save(out, format="HEIF", quality=95, **({"exif": exif.tobytes()} if exif is not None else {}))
    return out.getvalue()


def taken(exif: Image.Exif, when: str) -> Image.Exif:
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = when
    return exif


def test_a_heic_is_accepted_with_its_pixels_and_without_its_gps_position():
    content = heic(photo((64, 48)), exif_with_gps())
    assert content[4:12] == b"ftypheic"
    assert Image.open(io.BytesIO(content)).getexif().get_ifd(0x8825)  # the upload carries a GPS position

    clean = clean_upload(content, filename="IMG_0412.HEIC")

    assert (clean.width, clean.height, clean.source_format) == (64, 48, "HEIF")
    assert_no_metadata(clean)
    # Lossy HEVC: the colours come back close, not exact.
    assert_close(reopen(clean).getpixel((10, 10)), photo((64, 48)).getpixel((10, 10)), tolerance=12)


def test_a_heic_keeps_the_date_it_was_taken_and_nothing_else():
    clean = clean_upload(heic(photo(), taken(exif_with_gps(), "2026:10:30 09:15:00")))

    assert clean.taken_at == datetime(2026, 10, 30, 9, 15)
    assert_no_metadata(clean)


def test_a_portrait_heic_comes_out_as_the_phone_showed_it():
    image = Image.new("RGB", (40, 60), BLUE)
    image.paste(RED, (0, 0, 40, 10))  # the top of the picture as the sensor saw it

    clean = clean_upload(heic(image, exif_with_gps(orientation=6)))

    # Orientation 6, "turn 90 degrees clockwise to view", is applied once: the sensor's top is on the right.
    assert (clean.width, clean.height) == (60, 40)
    assert_close(reopen(clean).getpixel((55, 20)), RED, tolerance=12)
    assert_close(reopen(clean).getpixel((5, 20)), BLUE, tolerance=12)


def test_a_truncated_heic_is_refused_as_damaged_not_as_an_unknown_format():
    content = heic(photo((64, 48)))

    with pytest.raises(ImageRejected) as caught:
        clean_upload(content[: len(content) // 2], filename="IMG_0412.HEIC")

    assert caught.value.code == "corrupt"
    assert caught.value.message.startswith("IMG_0412.HEIC")


@pytest.mark.django_db
def test_the_api_stores_a_phones_heic_as_an_image_of_the_clinic(owner_api, clinic):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from classifier.models import LesionImage

    content = heic(photo((320, 240)), taken(exif_with_gps(), "2026:11:20 14:00:00"))
    picture = SimpleUploadedFile("IMG_0412.HEIC", content, content_type="image/heic")

    response = owner_api.post("/api/v1/images/", {"file": picture}, format="multipart")

    assert response.status_code == 201, response.content
    image = LesionImage.objects.get()
    assert (image.clinic, image.width, image.height) == (clinic, 320, 240)
    assert image.taken_at.date().isoformat() == "2026-11-20"
