"""A request with several bad files: every refused file is named with its reason, at once, and nothing is stored."""

from __future__ import annotations

import pytest

from classifier.lib.imaging import ImageRejected
from classifier.models import LesionImage, Prediction, UploadBatch
from classifier.uploads import UploadRefused, validate_files
from tests.conftest import media_files
from tests.images import image_bytes, upload

pytestmark = pytest.mark.django_db
API_URL = "/api/v1/images/"

# What some Android phones write: an ISO media file whose brand says AVIF (no AV1 decoder here).
AVIF_BYTES = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(200)
SIZE_LIMIT = 20_000  # bytes: the good PNG below is ~9 KB, the BMP ~30 KB


def the_issues_five_files():
    """An AVIF, an HTML page named .jpg, a 0-byte file, a file over the size limit and a good image."""
    return [
        upload("IMG_0412.avif", data=AVIF_BYTES),
        upload("referral.jpg", data=b"<!doctype html><html><body>Referral letter</body></html>"),
        upload("empty.png", data=b""),
        upload("huge.bmp", fmt="BMP", size=(100, 100)),
        upload("lesion.png", seed=3),
    ]


EXPECTED = [
    ("IMG_0412.avif", "unsupported_format", "is in AVIF format"),
    ("referral.jpg", "not_an_image", "is not an image"),
    ("empty.png", "empty", "is empty"),
    ("huge.bmp", "too_large", "the limit is 19.5 KB"),
]


def assert_nothing_stored():
    assert LesionImage.objects.count() == 0
    assert Prediction.objects.count() == 0
    assert UploadBatch.objects.count() == 0
    assert media_files() == []


# --- validate_files: every file is decoded, every rejection collected.


def test_it_collects_every_rejection_in_upload_order(settings):
    settings.UPLOAD_MAX_BYTES = SIZE_LIMIT

    with pytest.raises(UploadRefused) as caught:
        validate_files(the_issues_five_files())

    refused = caught.value
    assert [(r.filename, r.code) for r in refused.rejections] == [(name, code) for name, code, _ in EXPECTED]
    assert list(refused.refused) == [0, 1, 2, 3]  # positions in the request; the good file (4) is not there
    assert refused.file_count == 5
    for rejection, (name, _, reason) in zip(refused.rejections, EXPECTED, strict=True):
        assert rejection.message.startswith(name) and reason in rejection.message


def test_it_decodes_files_after_a_bad_one_so_a_truncated_jpeg_is_caught_too():
    files = [upload("empty.png", data=b""), upload("cut.jpg", data=image_bytes("JPEG", (200, 150))[:600])]

    with pytest.raises(UploadRefused) as caught:
        validate_files(files)

    assert [(r.filename, r.code) for r in caught.value.rejections] == [("empty.png", "empty"), ("cut.jpg", "corrupt")]


def test_the_refusal_is_still_an_image_rejection_for_the_first_refused_file():
    with pytest.raises(ImageRejected) as caught:
        validate_files([upload("fine.png", seed=1), upload("notes.jpg", data=b"plain text"), upload("e.png", data=b"")])

    assert isinstance(caught.value, UploadRefused)
    assert (caught.value.code, caught.value.filename) == ("not_an_image", "notes.jpg")
    assert caught.value.message.startswith("notes.jpg is not an image.")
    assert caught.value.message.endswith("1 more file was refused too: see errors.")


# --- The API: today's top-level fields for the first refused file, and "errors" for all of them.


def test_the_api_lists_every_refused_file_and_stores_nothing(owner_api, settings):
    settings.UPLOAD_MAX_BYTES = SIZE_LIMIT

    response = owner_api.post(API_URL, {"file": the_issues_five_files()}, format="multipart")

    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["code"], body["file"]) == ("unsupported_format", "IMG_0412.avif")
    assert body["detail"].startswith("IMG_0412.avif is in AVIF format")
    assert [(e["index"], e["file"], e["code"]) for e in body["errors"]] == [
        (index, name, code) for index, (name, code, _) in enumerate(EXPECTED)
    ]
    for error, (name, _, reason) in zip(body["errors"], EXPECTED, strict=True):
        assert error["detail"].startswith(name) and reason in error["detail"]
    assert_nothing_stored()


def test_the_api_answers_413_only_when_every_refused_file_is_too_large(owner_api, settings):
    settings.UPLOAD_MAX_BYTES = SIZE_LIMIT
    big = [upload(f"big{n}.bmp", fmt="BMP", size=(100, 100), seed=n) for n in range(2)]

    response = owner_api.post(API_URL, {"file": [upload("ok.png"), *big]}, format="multipart")

    assert response.status_code == 413
    body = response.json()
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(1, "too_large"), (2, "too_large")]
    assert (body["code"], body["file"]) == ("too_large", "big0.bmp")
    assert_nothing_stored()


def test_the_api_gives_one_bad_file_the_same_body_with_a_single_error(owner_api):
    response = owner_api.post(
        API_URL, {"file": [upload("ok.png"), upload("bad.jpg", data=b"nope")]}, format="multipart"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "bad.jpg is not an image. Please upload a JPEG, PNG, WebP, HEIC, TIFF or BMP image."
    assert body["errors"] == [{"index": 1, "file": "bad.jpg", "code": "not_an_image", "detail": body["detail"]}]


def test_the_schema_documents_the_list_of_refused_files(owner_api):
    schema = owner_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    error = schema["components"]["schemas"]["UploadError"]
    assert {"detail", "code", "file", "errors"} <= set(error["properties"])
    item = schema["components"]["schemas"]["UploadFileError"]
    assert set(item["properties"]) == {"index", "file", "code", "detail"}
    responses = schema["paths"]["/api/v1/images/"]["post"]["responses"]
    assert "every refused file" in responses["400"]["description"]
    assert "every refused file is too large" in responses["413"]["description"]


# --- The upload page without JavaScript: the same list, in the page.


def test_the_page_without_javascript_lists_every_refused_file_and_says_nothing_was_stored(owner_web, settings):
    settings.UPLOAD_MAX_BYTES = SIZE_LIMIT

    response = owner_web.post("/upload/", {"files": the_issues_five_files()})

    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was stored: 4 of the 5 files were refused." in page
    assert "Choose your files again without these:" in page
    for name, _, reason in EXPECTED:
        assert f'<li data-refused-file="{name}">' in page
        assert reason in page
    assert 'data-refused-file="lesion.png"' not in page
    assert_nothing_stored()


def test_the_page_answers_javascript_with_every_refused_file_and_its_position(owner_web, settings):
    settings.UPLOAD_MAX_BYTES = SIZE_LIMIT

    response = owner_web.post("/upload/", {"files": the_issues_five_files()}, HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    body = response.json()
    assert [(e["index"], e["file"], e["code"]) for e in body["errors"]] == [
        (index, name, code) for index, (name, code, _) in enumerate(EXPECTED)
    ]
    assert_nothing_stored()


def test_the_page_answers_javascript_with_where_to_go_after_an_upload(owner_web):
    response = owner_web.post("/upload/", {"files": [upload("mole.png")]}, HTTP_ACCEPT="application/json")

    assert response.status_code == 201
    assert response.json() == {"redirect": f"/predictions/{Prediction.objects.get().pk}/"}


def test_the_page_answers_javascript_with_the_clinical_field_errors(owner_web):
    response = owner_web.post("/upload/", {"files": [upload("mole.png")], "age": "300"}, HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    body = response.json()
    assert list(body["fields"]) == ["age"]
    assert "less than or equal to 120" in body["fields"]["age"][0]
    assert_nothing_stored()
