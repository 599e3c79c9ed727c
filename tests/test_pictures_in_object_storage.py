"""Uploads in an S3-compatible store (a real server over HTTP): stored there, served only by the app."""

from __future__ import annotations

import pytest

from classifier.models import LesionImage, Prediction
from tests.conftest import media_files
from tests.images import upload

pytestmark = pytest.mark.django_db


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_an_upload_is_stored_in_the_bucket_and_not_on_the_local_disk(in_store, owner_api):
    response = owner_api.post("/api/v1/images/", {"file": [upload("big.jpg", fmt="JPEG", size=(1600, 1200))]},
                              format="multipart")  # fmt: skip

    assert response.status_code == 201, response.content
    image = LesionImage.objects.get()
    folders = {key.split("/")[1] for key in in_store.keys()}
    assert folders == {"images", "working", "thumbs"}
    assert f"site/{image.file.name}" in in_store.keys() and f"site/{image.working_file.name}" in in_store.keys()
    assert media_files() == []


def test_the_picture_is_served_by_the_access_checked_view_from_the_bucket(in_store, owner_api, outsider_api):
    owner_api.post("/api/v1/images/", {"file": [upload("mole.png")]}, format="multipart")
    image = LesionImage.objects.get()

    served = owner_api.get(f"/images/{image.pk}/file/")
    thumbnail = owner_api.get(f"/images/{image.pk}/thumbnail/")

    assert served.status_code == 200 and body(served) == in_store.read(f"site/{image.file.name}")
    assert served["Cache-Control"] == "private, no-store"
    assert thumbnail.status_code == 200 and body(thumbnail)[:4] == b"RIFF"
    assert outsider_api.get(f"/images/{image.pk}/file/").status_code == 404


def test_stored_objects_are_private_and_the_app_gives_out_no_bucket_url(in_store, owner_api):
    response = owner_api.post("/api/v1/images/", {"file": [upload("mole.png")]}, format="multipart")
    image = LesionImage.objects.get()

    grants = in_store.client().get_object_acl(Bucket=in_store.bucket, Key=f"site/{image.file.name}")["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]  # the owner's, nobody else's
    assert "URI" not in grants[0]["Grantee"]  # not AllUsers / AuthenticatedUsers
    entry = owner_api.get(f"/api/v1/images/{image.pk}/").json()
    assert in_store.endpoint not in response.content.decode() + str(entry)


def test_a_missing_object_is_a_404_not_an_error(in_store, owner_api):
    owner_api.post("/api/v1/images/", {"file": [upload("mole.png")]}, format="multipart")
    image = LesionImage.objects.get()
    in_store.client().delete_object(Bucket=in_store.bucket, Key=f"site/{image.file.name}")

    assert owner_api.get(f"/images/{image.pk}/file/").status_code == 404


def test_deleting_a_record_removes_its_objects_from_the_bucket(in_store, owner_api):
    owner_api.post("/api/v1/images/", {"file": [upload("mole.png")]}, format="multipart")
    image = LesionImage.objects.get()
    from classifier.stored_files import delete_unused_files

    Prediction.objects.all().delete()
    image.delete()
    delete_unused_files([image])

    assert in_store.keys() == []
