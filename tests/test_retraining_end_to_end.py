"""Label → retrain on the real `training` worker → new version → the real inference worker switches to it."""

from __future__ import annotations

import pytest

from classifier.models import ModelVersion, Prediction, TrainingJob
from tests.conftest import token_client, wait_for
from tests.factories import make_labelled_dataset
from tests.images import upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished_job(client, job_id):
    body = client.get(f"/api/v1/training-jobs/{job_id}/").json()
    return body if body["status"] in ("succeeded", "failed", "cancelled") else None


def test_a_job_trains_registers_activates_and_the_inference_worker_switches(
    celery_worker, training_worker, admin_user, owner_api, owner, active_tiny_model, settings,
    tiny_model_root, workers_trained_model_root,
):  # fmt: skip
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 1  # as the training worker runs (TRAINING_WORKER_GATE)
    shipped_before = sorted(path.name for path in tiny_model_root.iterdir())
    admin_api = token_client(admin_user)
    images = make_labelled_dataset(owner, images_per_lesion=1)
    label = admin_api.post(f"/api/v1/images/{images[0].pk}/label/", {"diagnosis": "mel", "method": "histo"})
    assert label.status_code == 200

    job_id = admin_api.post("/api/v1/training-jobs/", {"epochs": 2}, format="json").json()["id"]
    job = wait_for(lambda: finished_job(admin_api, job_id), timeout=180, interval=0.5)

    assert job["status"] == "succeeded", f"{job['error']}\n{training_worker.log()[-3000:]}"
    assert job["progress"] == 100.0 and job["result_version"].startswith(f"retrain-{job_id}-")
    assert job["gate"]["passed"] is True, job["gate"]  # the training worker runs with a permissive gate
    assert "balanced_accuracy" in job["metrics"]["test"]
    new_version = ModelVersion.objects.get(name=job["result_version"])
    assert new_version.is_active and new_version.card["metrics"]["test"]["n_images"] > 0
    # Written to the trained versions' folder, not into the shipped ones' (the checkout's models/).
    assert new_version.root == "trained"
    assert (workers_trained_model_root / new_version.directory / "model.keras").is_file()
    assert sorted(path.name for path in tiny_model_root.iterdir()) == shipped_before

    # The inference worker, never restarted, serves the new version on its next task.
    response = owner_api.post("/api/v1/images/", {"file": [upload("after.png", seed=999)]}, format="multipart")
    url = response.json()["images"][0]["prediction"]["url"]
    body = wait_for(lambda: (b := owner_api.get(url).json())["status"] in ("done", "failed") and b, timeout=90)
    assert body["status"] == "done", celery_worker.log()[-3000:]
    assert body["model_version"] == new_version.name


def accepted_then_unlabelled(admin_user) -> int:
    """A job queued as if it had been accepted before its labelled images were withdrawn."""
    from worker.tasks import retrain

    job = TrainingJob.objects.create(requested_by=admin_user, epochs=1)
    retrain.apply_async(args=[job.pk])
    return job.pk


def test_a_job_that_fails_when_it_runs_leaves_the_active_version_serving(
    training_worker, admin_user, active_tiny_model, settings
):
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 1  # as the training worker runs (TRAINING_WORKER_GATE)
    admin_api = token_client(admin_user)  # no labelled images at all: the job cannot train
    refused = admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json")
    assert refused.status_code == 400 and TrainingJob.objects.count() == 0  # refused up front, by the same rule

    job_id = accepted_then_unlabelled(admin_user)
    job = wait_for(lambda: finished_job(admin_api, job_id), timeout=120, interval=0.5)

    assert job["status"] == "failed" and "Not enough labelled images" in job["error"]
    assert job["error"] == refused.json()["detail"]
    assert ModelVersion.active() == active_tiny_model
    assert Prediction.objects.count() == 0
    # The worker survives a failed job and takes the next one.
    next_id = accepted_then_unlabelled(admin_user)
    assert wait_for(lambda: finished_job(admin_api, next_id), timeout=120, interval=0.5)["status"] == "failed"
