"""Upload → queue → a real Celery worker process → result, through real Redis and the real database."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.images import upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(client, url):
    body = client.get(url).json()
    return body if body["status"] in ("done", "failed") else None


def test_an_uploaded_image_is_classified_by_the_worker(celery_worker, owner_api, active_tiny_model):
    response = owner_api.post("/api/v1/images/", {"file": [upload("mole.jpg", fmt="JPEG")]}, format="multipart")
    assert response.status_code == 201
    summary = response.json()["images"][0]["prediction"]
    assert summary["status"] == "queued"

    body = wait_for(lambda: finished(owner_api, summary["url"]), timeout=90)

    assert body["status"] == "done", celery_worker.log()
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["top_class"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["model_version"] == "tiny-v1"
    assert body["inference_ms"] > 0 and body["finished_at"] >= body["started_at"]


def test_a_batch_upload_is_classified_in_batches(celery_worker, owner_api, active_tiny_model):
    files = [upload(f"m{i}.png", seed=100 + i) for i in range(6)]
    response = owner_api.post("/api/v1/images/", {"file": files}, format="multipart")
    assert response.status_code == 201
    batch, batch_url = response.json()["batch"], response.json()["batch_url"]

    def all_done():
        body = owner_api.get(batch_url).json()
        return body if body["is_finished"] else None

    body = wait_for(all_done, timeout=90)

    assert body["counts"] == {"queued": 0, "running": 0, "done": 6, "failed": 0}, celery_worker.log()
    assert body["progress"] == 1.0
    assert sorted(p["position"] for p in body["predictions"]) == list(range(6))
    # One task took the whole batch: every image was claimed by the same task and run in one call.
    from classifier.models import Prediction

    assert Prediction.objects.filter(image__batch=batch).values("task_id").distinct().count() == 1


def test_without_an_active_model_the_worker_records_a_clear_failure(celery_worker, owner_api):
    response = owner_api.post("/api/v1/images/", {"file": [upload()]}, format="multipart")
    url = response.json()["images"][0]["prediction"]["url"]

    body = wait_for(lambda: finished(owner_api, url), timeout=90)

    assert body["status"] == "failed"
    assert body["error"].startswith("No active model version")
