"""Uploading pictures the clinician had uploaded before: batches list every file, stored details are kept."""

from __future__ import annotations

import pytest

from classifier.models import BatchEntry, LesionImage, Prediction
from tests.images import image_bytes, upload

pytestmark = pytest.mark.django_db
URL = "/api/v1/images/"


def post(client, *files, **fields):
    return client.post(URL, {"file": list(files), **fields}, format="multipart")


def mark_done(prediction_id: int, top_class: str, malignant: float, flagged: bool) -> Prediction:
    prediction = Prediction.objects.get(pk=prediction_id)
    probabilities = {code: 0.01 for code in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")}
    probabilities[top_class] = 0.94
    Prediction.objects.filter(pk=prediction_id).update(
        status="done", top_class=top_class, top_probability=0.94, probabilities=probabilities,
        malignant_probability=malignant, is_malignant=flagged, is_out_of_distribution=False,
    )  # fmt: skip
    return prediction


def test_a_batch_of_pictures_uploaded_before_lists_every_file_with_its_reading(owner_api, owner_web):
    first = post(owner_api, upload("melanoma.png", seed=1), upload("nevus.png", seed=2)).json()
    mel_id, nv_id = (item["prediction"]["id"] for item in first["images"])
    mark_done(mel_id, "mel", 0.97, True)
    mark_done(nv_id, "nv", 0.03, False)

    again = post(owner_api, upload("melanoma.png", seed=1), upload("nevus.png", seed=2))

    assert again.status_code == 200  # nothing new was stored
    body = again.json()
    assert [item["created"] for item in body["images"]] == [False, False]
    assert [item["prediction"]["id"] for item in body["images"]] == [mel_id, nv_id]
    page = owner_web.get(f"/batches/{body['batch']}/").content.decode()
    assert "Batch of 2 images" in page
    assert page.count("already uploaded on") == 2
    assert f'data-prediction="{mel_id}"' in page and f'data-prediction="{nv_id}"' in page
    assert "⚠ Suspicious" in page  # the known melanoma keeps its flag in the new batch
    listed = owner_api.get(f"/api/v1/predictions/?batch={body['batch']}").json()
    assert sorted(row["id"] for row in listed["results"]) == sorted([mel_id, nv_id])


def test_a_batch_of_one_new_and_one_known_picture_shows_both(owner_api, owner_web):
    known = post(owner_api, upload("known.png", seed=3)).json()["images"][0]

    body = post(owner_api, upload("known.png", seed=3), upload("new.png", seed=4)).json()

    entries = list(BatchEntry.objects.filter(batch_id=body["batch"]).order_by("position"))
    assert [(entry.image.original_filename, entry.already_uploaded) for entry in entries] == [
        ("known.png", True),
        ("new.png", False),
    ]
    assert entries[0].prediction_id == known["prediction"]["id"]
    page = owner_web.get(f"/batches/{body['batch']}/").content.decode()
    assert "Batch of 2 images" in page
    assert page.count("already uploaded on") == 1


def test_the_same_file_twice_in_one_request_is_listed_once(owner_api):
    body = post(owner_api, upload("a.png", seed=5), upload("a-copy.png", seed=5), upload("b.png", seed=6)).json()

    assert [item["created"] for item in body["images"]] == [True, False, True]
    assert BatchEntry.objects.filter(batch_id=body["batch"]).count() == 2


def test_new_clinical_fields_on_known_bytes_are_not_applied_and_the_answer_says_so(owner_api):
    post(owner_api, upload("mole.png", seed=7), age=54, sex="female")

    response = post(owner_api, upload("mole.png", seed=7), age=60, sex="female", site="back")

    [item] = response.json()["images"]
    assert item["created"] is False
    assert item["already_uploaded_at"] is not None
    assert sorted(item["ignored_fields"]) == ["age", "site"]
    image = LesionImage.objects.get(pk=item["id"])
    assert (image.age, image.sex, image.site) == (54, "female", "")


def test_the_upload_page_says_a_picture_was_uploaded_before_and_which_details_were_kept(owner_web):
    data = image_bytes(seed=8)
    owner_web.post("/upload/", {"files": [upload("mole.png", data=data)], "age": 54})

    response = owner_web.post("/upload/", {"files": [upload("mole.png", data=data)], "age": 61}, follow=True)

    page = response.content.decode()
    assert "This clinic already had this picture, uploaded on" in page
    assert "Age not changed: a picture uploaded before keeps the details stored with it" in page
    assert LesionImage.objects.get().age == 54
