"""Admins start, watch and cancel training jobs and activate model versions; clinicians cannot."""

from __future__ import annotations

import pytest

from classifier.models import ModelVersion, TrainingJob
from tests.conftest import token_client
from tests.tiny_model import write_card_only

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(admin_user):
    return token_client(admin_user)


@pytest.fixture
def two_versions(tmp_path, settings):
    from classifier.registry import register_model_versions

    write_card_only(tmp_path, "v1", created="2026-01-01T00:00:00Z")
    write_card_only(tmp_path, "v2", created="2026-02-01T00:00:00Z")
    settings.MODEL_ROOT = tmp_path
    register_model_versions(tmp_path)
    return ModelVersion.objects.get(name="v1"), ModelVersion.objects.get(name="v2")


def test_an_admin_starts_a_job_and_gets_its_id(admin_api, admin_user):
    response = admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json")

    assert response.status_code == 201, response.content
    job = TrainingJob.objects.get(pk=response.json()["id"])
    assert (job.status, job.epochs, job.requested_by, job.start_from) == ("queued", 1, admin_user, "active")
    detail = admin_api.get(f"/api/v1/training-jobs/{job.pk}/").json()
    assert detail["status"] == "queued" and detail["progress"] == 0.0


def test_only_one_job_may_be_open_at_a_time(admin_api):
    admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json")
    second = admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json")
    assert second.status_code == 409
    assert TrainingJob.objects.count() == 1


@pytest.mark.parametrize("body", [{"epochs": 0}, {"epochs": 10_000}, {"epochs": "many"}, {"start_from": "scratch"}])
def test_invalid_job_options_are_refused(admin_api, body):
    assert admin_api.post("/api/v1/training-jobs/", body, format="json").status_code == 400
    assert TrainingJob.objects.count() == 0


def test_cancelling_a_queued_job_cancels_it_at_once(admin_api):
    job_id = admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json").json()["id"]

    response = admin_api.post(f"/api/v1/training-jobs/{job_id}/cancel/")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json").status_code == 201


def test_an_admin_lists_versions_with_metrics_and_rolls_back_in_one_call(admin_api, two_versions):
    v1, v2 = two_versions
    listing = admin_api.get("/api/v1/model-versions/").json()["results"]
    assert {v["name"]: v["is_active"] for v in listing} == {"v1": False, "v2": True}
    assert "balanced_accuracy" in listing[0]["metrics"]

    response = admin_api.post(f"/api/v1/model-versions/{v1.pk}/activate/")

    assert response.status_code == 200 and response.json()["is_active"] is True
    assert ModelVersion.active() == v1


def test_clinicians_cannot_label_retrain_or_activate(owner_api, owner, two_versions):
    v1, _ = two_versions
    assert owner_api.get("/api/v1/training-jobs/").status_code == 403
    assert owner_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json").status_code == 403
    assert owner_api.get("/api/v1/model-versions/").status_code == 403
    assert owner_api.post(f"/api/v1/model-versions/{v1.pk}/activate/").status_code == 403
    assert TrainingJob.objects.count() == 0 and ModelVersion.active().name == "v2"


def test_anonymous_clients_get_401(anonymous_api):
    assert anonymous_api.get("/api/v1/training-jobs/").status_code == 401
    assert anonymous_api.get("/api/v1/model-versions/").status_code == 401
