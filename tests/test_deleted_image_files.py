"""Deleting an image removes its stored file and thumbnail once nothing else uses them, after commit."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.db import transaction

from classifier.models import LesionImage
from classifier.thumbnails import thumbnail_name
from tests.conftest import media_files
from tests.images import upload

pytestmark = pytest.mark.django_db


def uploaded(client, seed: int = 1) -> LesionImage:
    response = client.post("/api/v1/images/", {"file": [upload("mole.png", seed=seed)]}, format="multipart")
    assert response.status_code == 201, response.content
    return LesionImage.objects.get(pk=response.json()["images"][0]["id"])


def files_of(image: LesionImage) -> list[str]:
    return [image.file.name, thumbnail_name(image.sha256)]


def stored(names: list[str]) -> list[bool]:
    return [default_storage.exists(name) for name in names]


def test_the_admins_delete_removes_the_picture_and_its_thumbnail(
    admin_client, owner_api, django_capture_on_commit_callbacks
):
    image = uploaded(owner_api)
    names = files_of(image)
    assert stored(names) == [True, True]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/classifier/lesionimage/{image.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not LesionImage.objects.filter(pk=image.pk).exists()
    assert stored(names) == [False, False]
    assert media_files() == []


def test_a_picture_another_clinic_holds_keeps_its_files_until_its_last_image_goes(
    owner_api, outsider_api, django_capture_on_commit_callbacks
):
    mine, theirs = uploaded(owner_api, seed=7), uploaded(outsider_api, seed=7)  # the same bytes, two clinics
    assert mine.pk != theirs.pk and files_of(mine) == files_of(theirs)

    with django_capture_on_commit_callbacks(execute=True):
        mine.delete()
    assert stored(files_of(theirs)) == [True, True]

    with django_capture_on_commit_callbacks(execute=True):
        theirs.delete()
    assert stored(files_of(theirs)) == [False, False]


def test_a_queryset_delete_removes_every_images_files(owner_api, django_capture_on_commit_callbacks):
    images = [uploaded(owner_api, seed=seed) for seed in (1, 2, 3)]

    with django_capture_on_commit_callbacks(execute=True):
        LesionImage.objects.filter(pk__in=[image.pk for image in images]).delete()

    assert media_files() == []


def test_the_labelling_queues_delete_removes_the_files_too(admin_client, owner_api, django_capture_on_commit_callbacks):
    image = uploaded(owner_api)  # unlabelled: in the queue, the admin's proxy of the same rows

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/classifier/unlabelledimage/{image.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert stored(files_of(image)) == [False, False]


def test_a_delete_that_is_rolled_back_keeps_the_row_and_its_files(owner_api, django_capture_on_commit_callbacks):
    image = uploaded(owner_api)

    def delete_then_fail():
        with transaction.atomic():
            LesionImage.objects.filter(pk=image.pk).delete()
            raise RuntimeError("something after the delete failed")

    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True) as callbacks:
        delete_then_fail()

    assert callbacks == []
    assert LesionImage.objects.filter(pk=image.pk).exists()
    assert stored(files_of(image)) == [True, True]


def test_the_files_stay_until_the_deleting_transaction_commits(owner_api, django_capture_on_commit_callbacks):
    image = uploaded(owner_api)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        image.delete()
        assert stored(files_of(image)) == [True, True]  # not yet committed

    for callback in callbacks:
        callback()
    assert stored(files_of(image)) == [False, False]


def test_deleting_a_user_removes_the_files_of_the_images_that_go_with_them(
    owner, owner_api, django_capture_on_commit_callbacks
):
    image = uploaded(owner_api)

    with django_capture_on_commit_callbacks(execute=True):
        owner.delete()  # their images go with them (CASCADE)

    assert not LesionImage.objects.exists()
    assert stored(files_of(image)) == [False, False]


def test_a_large_pictures_working_copy_goes_with_it_and_stays_while_another_clinic_holds_it(
    owner_api, outsider_api, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from bench.picture_storage import camera_jpeg

    data = camera_jpeg((1600, 1200))

    def send(client) -> LesionImage:
        picture = SimpleUploadedFile("IMG_1.jpg", data, content_type="image/jpeg")
        response = client.post("/api/v1/images/", {"file": picture}, format="multipart")
        return LesionImage.objects.get(pk=response.json()["images"][0]["id"])

    mine, theirs = send(owner_api), send(outsider_api)
    names = [*files_of(mine), mine.working_file.name]
    assert mine.working_file.name and stored(names) == [True, True, True]

    with django_capture_on_commit_callbacks(execute=True):
        mine.delete()
    assert stored(names) == [True, True, True]

    with django_capture_on_commit_callbacks(execute=True):
        theirs.delete()
    assert stored(names) == [False, False, False]
    assert media_files() == []
