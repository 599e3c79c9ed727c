"""An upload's Idempotency-Key: a retried request gets the first answer again and creates nothing twice."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from classifier.audit import Action, AuditEvent
from classifier.idempotency import IdempotencyRecord
from classifier.models import BatchEntry, LesionImage, Prediction, UploadBatch
from tests.images import upload

pytestmark = pytest.mark.django_db
URL = "/api/v1/images/"
KEY = "5b0c7f0e-8a5e-4c43-9d55-0d3e1d1f2a11"


def files(*seeds):
    return [upload(f"m{seed}.png", seed=seed) for seed in seeds]


def post(client, payload, key=KEY, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(URL, payload, format="multipart", **headers, **extra)


def counts():
    return (
        LesionImage.objects.count(),
        Prediction.objects.count(),
        UploadBatch.objects.count(),
        BatchEntry.objects.count(),
        AuditEvent.objects.filter(action=Action.UPLOADED).count(),
    )


def test_a_retried_upload_gets_the_first_answer_and_creates_nothing(owner_api):
    first = post(owner_api, {"file": files(1, 2), "site": "back"})
    created = counts()

    retry = post(owner_api, {"file": files(1, 2), "site": "back"})

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert counts() == created == (2, 2, 1, 2, 2)


def test_without_a_key_a_retry_makes_a_second_batch_of_the_same_pictures(owner_api):
    # What the key is for: the pictures are de-duplicated by content anyway, the batch and the answer are not.
    post(owner_api, {"file": files(1, 2)}, key=None)
    retry = post(owner_api, {"file": files(1, 2)}, key=None)

    assert retry.status_code == 200 and [i["created"] for i in retry.json()["images"]] == [False, False]
    assert UploadBatch.objects.count() == 2


def test_the_same_key_with_other_files_is_refused_and_stores_nothing(owner_api):
    post(owner_api, {"file": files(1)})
    created = counts()

    response = post(owner_api, {"file": files(2)})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("This Idempotency-Key was used for a different request")
    assert counts() == created


def test_the_same_key_with_other_fields_is_refused(owner_api):
    post(owner_api, {"file": files(1), "site": "back"})

    assert post(owner_api, {"file": files(1), "site": "face"}).status_code == 422


def test_a_retry_while_the_first_is_still_being_processed_gets_409(owner_api, owner):
    from classifier.idempotency import fingerprint

    payload = files(1)
    IdempotencyRecord.objects.create(user=owner, key=KEY, fingerprint=fingerprint({}, payload))

    response = post(owner_api, {"file": payload})

    assert response.status_code == 409
    assert "still being processed" in response.json()["detail"]
    assert LesionImage.objects.count() == 0


def test_a_refused_upload_releases_its_key_for_the_corrected_request(owner_api):
    refused = post(owner_api, {"file": [upload("bad.jpg", data=b"not a picture")]})
    assert refused.status_code == 400 and not IdempotencyRecord.objects.exists()

    corrected = post(owner_api, {"file": files(1)})

    assert corrected.status_code == 201 and LesionImage.objects.count() == 1


def test_an_upload_that_fails_releases_its_key(owner_api, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("storage went away")

    monkeypatch.setattr("classifier.api.views.store_uploads", broken)

    with pytest.raises(RuntimeError):
        post(owner_api, {"file": files(1)})

    assert not IdempotencyRecord.objects.exists()


def test_keys_are_per_user(owner_api, outsider_api):
    post(owner_api, {"file": files(1)})

    theirs = post(outsider_api, {"file": files(1)})

    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    assert LesionImage.objects.count() == 2  # one in each clinic


def test_an_expired_key_replays_nothing_and_the_sweep_deletes_it(owner_api, owner, settings):
    from classifier.sweeper import sweep_stale_work

    post(owner_api, {"file": files(1)})
    IdempotencyRecord.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))

    again = post(owner_api, {"file": files(1)})

    assert again.status_code == 200 and "Idempotent-Replayed" not in again  # the picture was known: not created
    IdempotencyRecord.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))
    sweep_stale_work()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "two words"])
def test_a_malformed_key_is_refused_naming_the_header(owner_api, key):
    response = post(owner_api, {"file": files(1)}, key=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert LesionImage.objects.count() == 0
