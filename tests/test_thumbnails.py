"""Thumbnails: small, made once (at upload, or on first request for older images), shared, used by the lists."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from classifier.lib.imaging import THUMBNAIL_SIDE, make_thumbnail
from classifier.models import LesionImage, UploadBatch
from classifier.thumbnails import thumbnail_name
from tests.conftest import media_files
from tests.factories import make_batch, make_image, make_prediction
from tests.images import image_bytes, upload

pytestmark = pytest.mark.django_db


def picture(width: int, height: int, colour=(180, 90, 60)) -> Image.Image:
    return Image.new("RGB", (width, height), colour)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- make_thumbnail, a plain function


@pytest.mark.parametrize(
    ("size", "expected"),
    [((6000, 4000), (256, 171)), ((4000, 6000), (171, 256)), ((600, 450), (256, 192)), ((256, 100), (256, 100))],
)
def test_a_thumbnail_fits_the_longest_side_and_keeps_the_proportions(size, expected):
    assert decoded(make_thumbnail(picture(*size))).size == expected


def test_a_small_picture_is_not_enlarged():
    assert decoded(make_thumbnail(picture(64, 48))).size == (64, 48)


def test_a_thumbnail_is_a_small_webp_of_the_same_picture():
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    large = coarse.resize((6000, 4000), Image.Resampling.BILINEAR)

    data = make_thumbnail(large)
    thumb = decoded(data)

    assert thumb.format == "WEBP" and thumb.mode == "RGB"
    assert len(data) < 30_000
    reference = np.asarray(large.resize(thumb.size, Image.Resampling.BOX), dtype=np.float64)
    assert np.abs(np.asarray(thumb, dtype=np.float64) - reference).mean() < 8  # of 255


def test_the_thumbnail_is_stored_beside_the_image_by_its_sha256():
    sha = "ab" + "0" * 62
    assert thumbnail_name(sha) == f"thumbs/ab/{sha}.webp"


# --- At upload


def post(client, *files):
    return client.post("/api/v1/images/", {"file": list(files)}, format="multipart")


def test_an_upload_stores_its_thumbnail_and_the_api_links_it(owner_api):
    response = post(owner_api, upload("big.png", size=(1200, 800), seed=5))
    assert response.status_code == 201
    image = LesionImage.objects.get()

    name = thumbnail_name(image.sha256)
    assert default_storage.exists(name)
    with default_storage.open(name) as handle:
        assert Image.open(handle).size == (THUMBNAIL_SIDE, 171)
    entry = owner_api.get(f"/api/v1/images/{image.pk}/").json()
    assert entry["thumbnail_url"] == f"http://testserver/images/{image.pk}/thumbnail/"


def test_identical_uploads_of_two_clinicians_share_one_thumbnail(owner_api, outsider_api):
    post(owner_api, upload(seed=3))
    post(outsider_api, upload(seed=3))

    assert LesionImage.objects.count() == 2
    assert len([path for path in media_files() if path.suffix == ".webp"]) == 1


def test_a_failure_while_storing_leaves_no_thumbnail_behind(owner_api, monkeypatch):
    from classifier import thumbnails

    real_save = thumbnails.default_storage.save
    saved = []

    def fail_on_the_second_thumbnail(name, content, **kwargs):
        if name.startswith("thumbs/") and saved:
            raise OSError("disk full")
        saved.append(name)
        return real_save(name, content, **kwargs)

    monkeypatch.setattr(thumbnails.default_storage, "save", fail_on_the_second_thumbnail)
    with pytest.raises(OSError, match="disk full"):
        post(owner_api, upload("a.png", seed=1), upload("b.png", seed=2))

    assert [name.split("/")[0] for name in saved] == ["thumbs", "images"]  # both written, then removed
    assert LesionImage.objects.count() == UploadBatch.objects.count() == 0
    assert media_files() == []


# --- Images stored before thumbnails existed


def test_an_older_image_gets_its_thumbnail_on_first_request_and_keeps_it(owner_web, owner, monkeypatch):
    image = make_image(owner)
    assert not default_storage.exists(thumbnail_name(image.sha256))

    first = owner_web.get(f"/images/{image.pk}/thumbnail/")

    assert first.status_code == 200 and first["Content-Type"] == "image/webp"
    served = b"".join(first.streaming_content)
    assert decoded(served).size == (image.width, image.height)  # 64x48: not enlarged
    with default_storage.open(thumbnail_name(image.sha256)) as handle:
        assert handle.read() == served

    from classifier import thumbnails

    def must_not_be_called(_):
        raise AssertionError("the thumbnail was made again")

    monkeypatch.setattr(thumbnails, "make_thumbnail", must_not_be_called)
    again = owner_web.get(f"/images/{image.pk}/thumbnail/")
    assert b"".join(again.streaming_content) == served


def test_a_thumbnail_stored_meanwhile_by_another_request_is_kept_not_duplicated(owner):
    from classifier.thumbnails import store_thumbnail

    image = make_image(owner)
    assert store_thumbnail(image.sha256, b"first") == thumbnail_name(image.sha256)
    assert store_thumbnail(image.sha256, b"second") is None

    with default_storage.open(thumbnail_name(image.sha256)) as handle:
        assert handle.read() == b"first"
    assert len([path for path in media_files() if path.suffix == ".webp"]) == 1


def test_a_thumbnail_of_a_missing_stored_image_is_404(owner_web, owner):
    image = make_image(owner)
    default_storage.delete(image.file.name)

    assert owner_web.get(f"/images/{image.pk}/thumbnail/").status_code == 404
    assert not default_storage.exists(thumbnail_name(image.sha256))


# --- The lists show thumbnails, not the stored file


def test_the_batch_and_history_pages_show_thumbnails_not_the_full_image(owner_web, owner):
    batch = make_batch(owner)
    done = make_prediction(owner, status="done", image=make_image(owner, batch=batch))
    make_prediction(owner, image=make_image(owner, batch=batch))

    for url in (f"/batches/{batch.pk}/", "/history/"):
        page = owner_web.get(url).content.decode()
        assert f'src="/images/{done.image_id}/thumbnail/"' in page, url
        assert "/file/" not in page, url


def test_the_admin_image_list_shows_thumbnails(admin_client, owner):
    image = make_prediction(owner, status="done").image

    for url in ("/admin/classifier/lesionimage/", "/admin/classifier/unlabelledimage/"):
        page = admin_client.get(url).content.decode()
        assert f'src="{url}{image.pk}/thumbnail/"' in page, url  # served by the admin itself, to staff
        assert admin_client.get(f"{url}{image.pk}/thumbnail/").status_code == 200
        assert "/file/" not in page, url


def test_an_upload_through_the_page_stores_a_thumbnail_too(owner_web):
    response = owner_web.post("/upload/", {"files": [upload("lesion.png", data=image_bytes(size=(300, 200)))]})

    assert response.status_code == 302
    image = LesionImage.objects.get()
    with default_storage.open(thumbnail_name(image.sha256)) as handle:
        assert Image.open(handle).size == (256, 171)
