"""A hostile-input corpus, generated here, sent through the real upload API: clear errors, nothing left behind."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from classifier.models import LesionImage, Prediction
from tests.conftest import media_files
from tests.images import upload

pytestmark = pytest.mark.django_db

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><script>alert(1)</script></svg>'


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gif() -> bytes:
    return encoded(Image.new("P", (64, 64)), "GIF")


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (64, 64), colour) for colour in ((200, 30, 30), (30, 200, 30))]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def sixteen_bit_png() -> bytes:
    return encoded(Image.fromarray(np.full((48, 64), 40000, dtype=np.uint16)), "PNG")


def with_gps_exif() -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)
    return encoded(Image.new("RGB", (64, 64), (120, 80, 60)), "JPEG", exif=exif)


REJECTED = [
    ("drawing.svg", SVG, "not_an_image"),
    ("drawing.png", SVG, "not_an_image"),
    ("page.jpg", b"<!doctype html><img src=x onerror=alert(1)>", "not_an_image"),
    ("archive.jpg", b"PK\x03\x04" + b"\0" * 200, "not_an_image"),
    ("anim.gif", gif(), "unsupported_format"),
]

ACCEPTED = [
    ("cmyk.jpg", lambda: encoded(Image.new("CMYK", (64, 64), (0, 100, 200, 0)), "JPEG")),
    ("grey.png", lambda: encoded(Image.new("L", (64, 64), 90), "PNG")),
    ("alpha.png", lambda: encoded(Image.new("RGBA", (64, 64), (255, 0, 0, 128)), "PNG")),
    ("deep.png", sixteen_bit_png),
    ("animated.png", lambda: animated("PNG")),
    ("animated.webp", lambda: animated("WEBP")),
]


@pytest.mark.parametrize(("name", "data", "code"), REJECTED)
def test_hostile_files_are_rejected_and_leave_nothing(owner_api, name, data, code):
    response = owner_api.post("/api/v1/images/", {"file": [upload(name, data=data)]})

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert LesionImage.objects.count() == Prediction.objects.count() == 0
    assert media_files() == []


@pytest.mark.parametrize(("name", "make"), ACCEPTED)
def test_unusual_but_real_images_are_stored_as_plain_rgb(owner_api, name, make):
    response = owner_api.post("/api/v1/images/", {"file": [upload(name, data=make())]})

    assert response.status_code == 201, response.content
    with Image.open(LesionImage.objects.get().file.path) as stored:
        assert (stored.format, stored.mode, getattr(stored, "n_frames", 1)) == ("PNG", "RGB", 1)


def test_gps_is_absent_from_the_file_served_back(owner_api, owner_web):
    image_id = owner_api.post("/api/v1/images/", {"file": [upload("gps.jpg", data=with_gps_exif())]}).json()["images"][
        0
    ]["id"]

    served = b"".join(owner_web.get(f"/images/{image_id}/file/").streaming_content)

    with Image.open(io.BytesIO(served)) as image:
        assert not image.getexif() and not image.info.get("exif")
    assert b"GPS" not in served and b"Exif" not in served


def test_a_filename_is_shown_escaped_never_as_markup(owner_web, owner_api):
    owner_api.post("/api/v1/images/", {"file": [upload('<img src=x onerror="alert(1)">.png')]})

    page = owner_web.get("/history/").content.decode()

    assert "<img src=x onerror" not in page
    assert "&lt;img src=x onerror" in page
