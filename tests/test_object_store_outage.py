"""The object store unreachable: an upload is refused with 503 and stores nothing; an inference waits."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError

from classifier.models import LesionImage, Prediction, UploadBatch
from classifier.object_storage import READ_UNAVAILABLE
from classifier.sweeper import requeue_stale_predictions
from tests.images import upload
from tests.object_store import free_port, storages_for
from worker.inference import run_predictions

pytestmark = pytest.mark.django_db


@pytest.fixture
def store_down(settings):
    """A store whose address answers nothing: the connection is refused, as when MinIO is stopped."""
    settings.STORAGES = storages_for(f"s3://lesionsite-test/site?endpoint_url=http://127.0.0.1:{free_port()}")


def assert_nothing_stored():
    assert LesionImage.objects.count() == Prediction.objects.count() == UploadBatch.objects.count() == 0


def test_the_api_answers_503_storage_unavailable_and_stores_nothing(store_down, owner_api):
    response = owner_api.post("/api/v1/images/", {"file": [upload("mole.png")]}, format="multipart")

    assert response.status_code == 503
    assert response.json() == {
        "detail": "The file store cannot be reached, so nothing was stored: try the upload again in a few minutes.",
        "code": "storage_unavailable",
    }
    assert_nothing_stored()


def test_the_upload_page_says_the_store_is_unavailable_and_stores_nothing(store_down, owner_web):
    page = owner_web.post("/upload/", {"files": [upload("mole.png")]})
    answered = owner_web.post("/upload/", {"files": [upload("mole.png")]}, headers={"accept": "application/json"})

    assert (
        page.status_code == 503 and "The file store cannot be reached, so nothing was stored" in page.content.decode()
    )
    assert answered.status_code == 503 and answered.json()["code"] == "storage_unavailable"
    assert_nothing_stored()


def test_a_store_lost_half_way_through_a_request_keeps_none_of_its_files(in_store, owner_api, monkeypatch):
    from storages.backends.s3 import S3Storage

    real_save, saved = S3Storage._save, []

    def save_then_lose_the_store(storage, name, content):
        if len(saved) == 2:  # the first file's thumbnail and picture went in; then the store went away
            raise EndpointConnectionError(endpoint_url=in_store.endpoint)
        saved.append(name)
        return real_save(storage, name, content)

    monkeypatch.setattr(S3Storage, "_save", save_then_lose_the_store)
    files = [upload("first.png", seed=1), upload("second.png", seed=2)]

    response = owner_api.post("/api/v1/images/", {"file": files}, format="multipart")

    assert response.status_code == 503 and response.json()["code"] == "storage_unavailable"
    assert len(saved) == 2 and in_store.keys() == []  # what had been written was removed again
    assert_nothing_stored()


def test_an_inference_that_cannot_read_the_store_goes_back_to_the_queue_and_the_sweep_retries_it(
    in_store, owner_api, active_tiny_model, settings, django_capture_on_commit_callbacks, monkeypatch
):
    owner_api.post("/api/v1/images/", {"file": [upload("mole.png")]}, format="multipart")
    prediction = Prediction.objects.get()
    reachable = settings.STORAGES
    settings.STORAGES = storages_for(f"s3://lesionsite-test/site?endpoint_url=http://127.0.0.1:{free_port()}")

    assert run_predictions([prediction.pk], task_id="while-down") == []

    prediction.refresh_from_db()
    assert (prediction.status, prediction.error, prediction.attempts) == ("queued", READ_UNAVAILABLE, 1)
    sent = []
    monkeypatch.setattr("classifier.sweeper.enqueue_predictions", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_stale_predictions(queued_for=0, running_for=3600) == [prediction.pk]
    assert sent == [[prediction.pk]]

    settings.STORAGES = reachable  # the store is back when the sweep's task runs
    assert run_predictions([prediction.pk], task_id="after-the-sweep") == [prediction.pk]
    prediction.refresh_from_db()
    assert (prediction.status, prediction.error, prediction.model_version) == ("done", "", active_tiny_model)


def test_a_picture_asked_for_while_the_store_is_down_is_a_503_with_a_reason(in_store, owner_api, settings):
    owner_api.post("/api/v1/images/", {"file": [upload("mole.png")]}, format="multipart")
    image = LesionImage.objects.get()
    settings.STORAGES = storages_for(f"s3://lesionsite-test/site?endpoint_url=http://127.0.0.1:{free_port()}")

    response = owner_api.get(f"/images/{image.pk}/file/")

    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert response.content.decode() == "The file store cannot be reached just now: try again in a few minutes."
    assert response["Cache-Control"] == "private, no-store"
