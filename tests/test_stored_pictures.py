"""How a camera's picture is stored: its own JPEG stream without metadata, a bounded working copy
that the worker reads, and the original served as it was taken."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from bench.picture_storage import camera_jpeg
from classifier.lib.imaging import WORKING_SIDE
from classifier.models import LesionImage
from tests.conftest import wait_for
from tests.test_imaging import exif_with_gps
from training.preprocessing import to_model_input

pytestmark = pytest.mark.django_db


def upload_jpeg(client, data: bytes, name: str = "IMG_0001.jpg"):
    picture = SimpleUploadedFile(name, data, content_type="image/jpeg")
    return client.post("/api/v1/images/", {"file": picture}, format="multipart")


def stored_bytes(image: LesionImage) -> int:
    names = [image.file.name, image.working_file.name]
    return sum(default_storage.size(name) for name in names if name)


def test_a_camera_jpeg_is_stored_as_its_own_stream_with_a_bounded_working_copy(owner_api):
    data = camera_jpeg((2400, 1800))

    response = upload_jpeg(owner_api, data)

    assert response.status_code == 201, response.content
    image = LesionImage.objects.get()
    assert image.file.name.endswith(".jpg") and (image.width, image.height) == (2400, 1800)
    assert stored_bytes(image) <= 1.2 * len(data)
    with default_storage.open(image.working_file.name) as handle, Image.open(handle) as working:
        assert working.format == "JPEG" and max(working.size) == WORKING_SIDE
    with default_storage.open(image.file.name) as handle:
        stored = handle.read()
    with Image.open(io.BytesIO(stored)) as original, Image.open(io.BytesIO(data)) as sent:
        assert np.array_equal(np.asarray(original), np.asarray(sent))  # not one pixel re-encoded
        assert dict(original.getexif()) == {}
    assert b"DermaCam" not in stored


def test_the_model_reads_the_working_copy_as_it_would_read_the_original(owner_api):
    data = camera_jpeg((2400, 1800), seed=4)
    upload_jpeg(owner_api, data)
    image = LesionImage.objects.get()

    from_working = to_model_input(image.open_pixels(), (150, 150), "squash")
    with Image.open(io.BytesIO(data)) as original:
        from_original = to_model_input(original.convert("RGB"), (150, 150), "squash")

    assert np.abs(from_working - from_original).mean() < 1.0  # grey levels, of 255


def test_the_original_is_served_as_stored_with_its_type(owner_api):
    data = camera_jpeg((1600, 1200), seed=2)
    image_id = upload_jpeg(owner_api, data).json()["images"][0]["id"]

    response = owner_api.get(f"/images/{image_id}/file/")

    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == default_storage.open(LesionImage.objects.get().file.name).read()


def test_a_portrait_photo_keeps_only_its_orientation_and_reads_upright():
    from classifier.lib.imaging import clean_upload

    sideways = Image.new("RGB", (1500, 2000), (200, 150, 120))
    sideways.paste((20, 20, 20), (0, 0, 1500, 100))  # the sensor's top row
    out = io.BytesIO()
    sideways.save(out, format="JPEG", quality=90, exif=exif_with_gps(orientation=6))

    clean = clean_upload(out.getvalue())

    with Image.open(io.BytesIO(clean.original)) as stored:
        assert dict(stored.getexif()) == {0x0112: 6} and stored.size == (1500, 2000)
    assert (clean.width, clean.height) == (2000, 1500)
    with Image.open(io.BytesIO(clean.working)) as working:
        assert working.size == (1024, 768)  # upright
        assert np.asarray(working)[:, -10:].mean() < 60  # the sensor's top row is now on the right


def test_a_small_picture_has_no_working_copy_and_is_read_from_the_original(owner_api):
    from tests.images import upload

    owner_api.post("/api/v1/images/", {"file": [upload("small.png", size=(200, 150))]}, format="multipart")
    image = LesionImage.objects.get()

    assert image.working_file.name == "" and image.file.name.endswith(".png")
    assert image.open_pixels().size == (200, 150)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_24_megapixel_jpeg_goes_through_the_whole_path(celery_worker, owner_api, active_tiny_model):
    data = camera_jpeg((6000, 4000), seed=9)

    body = upload_jpeg(owner_api, data, "IMG_2400.jpg").json()
    url = body["images"][0]["prediction"]["url"]
    result = wait_for(lambda: (r := owner_api.get(url).json())["status"] in ("done", "failed") and r, timeout=90)

    assert result["status"] == "done", celery_worker.log()
    image = LesionImage.objects.get()
    assert stored_bytes(image) <= 1.2 * len(data)
    assert (image.width, image.height) == (6000, 4000)


def test_the_admin_serves_a_stored_jpeg_as_jpeg(admin_client, owner_api):
    image_id = upload_jpeg(owner_api, camera_jpeg((800, 600), seed=3)).json()["images"][0]["id"]

    response = admin_client.get(f"/admin/classifier/lesionimage/{image_id}/file/")

    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
