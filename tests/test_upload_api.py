"""POST /api/v1/images/: what is accepted, what is rejected, and that rejection stores nothing."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from django.conf import settings
from PIL import Image

from classifier.models import LesionImage, Prediction, UploadBatch
from tests.conftest import media_files
from tests.images import image_bytes, upload

pytestmark = pytest.mark.django_db
URL = "/api/v1/images/"


def post(client, *files, **fields):
    return client.post(URL, {"file": list(files), **fields}, format="multipart")


def assert_nothing_stored():
    assert LesionImage.objects.count() == 0
    assert Prediction.objects.count() == 0
    assert UploadBatch.objects.count() == 0
    assert media_files() == []


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares a huge canvas; only a few bytes of data follow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_it_accepts_one_image_and_queues_a_prediction(owner_api, owner):
    response = post(owner_api, upload("mole.png"), age=54, sex="female", site="back")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["batch"] is None
    [item] = body["images"]
    assert item["created"] is True
    assert item["prediction"]["status"] == "queued"
    assert item["prediction"]["url"].endswith(f"/api/v1/predictions/{item['prediction']['id']}/")
    image = LesionImage.objects.get(pk=item["id"])
    assert (image.owner, image.age, image.sex, image.site) == (owner, 54, "female", "back")
    assert (image.width, image.height) == (64, 48)
    assert image.file.name == f"images/{image.sha256[:2]}/{image.sha256}.png"


def test_it_accepts_many_images_as_one_batch(owner_api):
    response = post(owner_api, *(upload(f"m{i}.jpg", fmt="JPEG", seed=i) for i in range(3)))

    assert response.status_code == 201
    body = response.json()
    assert len(body["images"]) == 3
    assert UploadBatch.objects.get(pk=body["batch"]).images.count() == 3
    assert Prediction.objects.filter(status="queued").count() == 3


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP"])
def test_it_accepts_each_supported_format(owner_api, fmt):
    response = post(owner_api, upload(f"lesion.{fmt.lower()}", fmt=fmt))

    assert response.status_code == 201, response.content
    stored = LesionImage.objects.get()
    assert stored.source_format == fmt
    with stored.file.open("rb") as handle, Image.open(handle) as reopened:
        # A JPEG keeps its own stream (metadata cut out); every other format becomes an RGB PNG.
        assert (reopened.format, reopened.mode) == ("JPEG" if fmt == "JPEG" else "PNG", "RGB")


def test_the_same_bytes_twice_give_back_the_existing_image(owner_api):
    first = post(owner_api, upload(seed=7)).json()["images"][0]

    again = post(owner_api, upload("renamed.png", seed=7))

    assert again.status_code == 200
    [item] = again.json()["images"]
    assert item["created"] is False
    assert (item["id"], item["prediction"]["id"]) == (first["id"], first["prediction"]["id"])
    assert LesionImage.objects.count() == 1
    assert Prediction.objects.count() == 1


def test_another_owner_uploading_the_same_bytes_gets_their_own_image(owner_api, outsider_api):
    post(owner_api, upload(seed=3))
    response = post(outsider_api, upload(seed=3))

    assert response.status_code == 201
    assert LesionImage.objects.count() == 2
    # Content-addressed: the pixels and their thumbnail are stored once.
    assert sorted(path.relative_to(settings.MEDIA_ROOT).parts[0] for path in media_files()) == ["images", "thumbs"]


def test_it_strips_exif_and_gps_from_what_it_stores(owner_api):
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPSLatitude
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (180, 120, 90)).save(buffer, "JPEG", exif=exif)

    response = post(owner_api, upload("gps.jpg", data=buffer.getvalue()))

    assert response.status_code == 201
    stored = LesionImage.objects.get().file.read()
    assert b"CameraMaker" not in stored
    with Image.open(io.BytesIO(stored)) as reopened:
        assert not reopened.getexif()
        assert "icc_profile" not in reopened.info


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("empty.jpg", b"", 400, "empty"),
        ("notes.jpg", b"this is a text file, not a picture\n" * 10, 400, "not_an_image"),
        ("page.png", b"<html><script>alert(1)</script></html>", 400, "not_an_image"),
        ("truncated.jpg", image_bytes("JPEG", (200, 150))[:600], 400, "corrupt"),
        ("tiny.png", image_bytes("PNG", (31, 64)), 400, "too_small"),
        ("bomb.png", png_header_claiming(100_000, 100_000), 400, "too_many_pixels"),
    ],
)
def test_it_rejects_bad_files_with_a_clear_error_and_stores_nothing(owner_api, name, data, status, code):
    response = post(owner_api, upload(name, data=data))

    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert name in body["detail"]
    assert body["file"] == name
    assert_nothing_stored()


def test_it_rejects_a_file_over_the_size_limit_with_413(owner_api, settings):
    settings.UPLOAD_MAX_BYTES = 10_000

    response = post(owner_api, upload("big.bmp", fmt="BMP", size=(100, 100)))

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert_nothing_stored()


def test_it_rejects_a_decompression_bomb_under_a_configured_pixel_limit(owner_api, settings):
    settings.UPLOAD_MAX_PIXELS = 2_000

    response = post(owner_api, upload("wide.png", size=(100, 100)))

    assert response.status_code in (400, 413)
    assert response.json()["code"] == "too_many_pixels"
    assert_nothing_stored()


def test_one_bad_file_in_a_batch_rejects_the_whole_batch(owner_api):
    response = post(owner_api, upload("good.png", seed=1), upload("bad.jpg", data=b"nope"), upload("ok.png", seed=2))

    assert response.status_code == 400
    assert response.json()["file"] == "bad.jpg"
    assert_nothing_stored()


def test_it_rejects_more_files_than_the_limit(owner_api, settings):
    settings.UPLOAD_MAX_FILES = 2

    response = post(owner_api, *(upload(f"{i}.png", seed=i) for i in range(3)))

    assert response.status_code == 413
    assert response.json()["code"] == "too_many_files"
    assert_nothing_stored()


def test_one_file_over_the_default_limit_gets_the_clear_413(owner_api, settings):
    # With the shipped settings, not a lowered limit: Django's own file-count guard must not answer first.
    tiny = image_bytes(size=(32, 32))
    files = [upload(f"{i}.png", data=tiny) for i in range(settings.UPLOAD_MAX_FILES + 1)]

    response = post(owner_api, *files)

    assert response.status_code == 413
    assert response.json()["code"] == "too_many_files"
    assert_nothing_stored()


def test_it_requires_a_file_part(owner_api):
    response = owner_api.post(URL, {"age": 40}, format="multipart")

    assert response.status_code == 400
    assert "file" in response.json()
    assert_nothing_stored()


@pytest.mark.parametrize(("field", "value"), [("age", "old"), ("age", 300), ("sex", "robot"), ("site", "moon")])
def test_it_rejects_invalid_clinical_fields(owner_api, field, value):
    response = post(owner_api, upload(), **{field: value})

    assert response.status_code == 400
    assert field in response.json()
    assert_nothing_stored()


def test_a_storage_failure_midway_leaves_no_orphan_file_or_row(owner_api, monkeypatch):
    from classifier import uploads

    real_save = uploads.default_storage.save
    calls = {"n": 0}

    def fail_on_second(name, content, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_save(name, content, **kwargs)

    monkeypatch.setattr(uploads.default_storage, "save", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        post(owner_api, upload("a.png", seed=1), upload("b.png", seed=2))

    assert calls["n"] == 2  # the first file was written, then removed
    assert_nothing_stored()


def test_a_database_failure_after_the_files_are_written_leaves_no_orphan_file_or_row(owner_api, monkeypatch):
    from django.db import DatabaseError

    from classifier.models import PredictionQuerySet

    def fail(*args, **kwargs):
        raise DatabaseError("connection lost")

    # The images' rows and files are written by then; their predictions' INSERT fails.
    monkeypatch.setattr(PredictionQuerySet, "bulk_create", fail)
    with pytest.raises(DatabaseError, match="connection lost"):
        post(owner_api, upload("a.png", seed=1), upload("b.png", seed=2))

    assert_nothing_stored()


def test_the_stored_name_ignores_the_clients_path_and_control_characters(owner_api):
    response = post(owner_api, upload("../../etc/pass\x07wd.png"))

    assert response.status_code == 201
    image = LesionImage.objects.get()
    assert image.original_filename == "passwd.png"
    assert ".." not in image.file.name
