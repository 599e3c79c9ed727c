"""Admins start, watch and cancel training jobs and activate model versions; clinicians cannot."""

from __future__ import annotations

import pytest

from classifier.models import ModelVersion, TrainingJob
from tests.conftest import token_client
from tests.factories import make_image, make_labelled_dataset
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


@pytest.fixture
def enough_labelled(owner, settings):
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 1
    return make_labelled_dataset(owner, train_lesions_per_class=1, images_per_lesion=1)


def test_an_admin_starts_a_job_and_gets_its_id(admin_api, admin_user, two_versions, enough_labelled):
    response = admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json")

    assert response.status_code == 201, response.content
    job = TrainingJob.objects.get(pk=response.json()["id"])
    assert (job.status, job.epochs, job.requested_by, job.start_from) == ("queued", 1, admin_user, "active")
    detail = admin_api.get(f"/api/v1/training-jobs/{job.pk}/").json()
    assert detail["status"] == "queued" and detail["progress"] == 0.0


def test_a_job_that_would_fail_for_want_of_labelled_images_is_refused_with_the_counts(
    admin_api, owner, two_versions, settings
):
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 10
    make_image(owner, diagnosis="mel", diagnosis_method="histo", source_lesion_id="L-1")

    response = admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "not_enough_data" and "Not enough labelled images" in body["detail"]
    assert body["minimum"] == {"train": 1, "val": 10, "test": 10}
    assert set(body["counts"]) == {"train", "val", "test"}
    assert sum(counts["mel"] for counts in body["counts"].values()) == 1
    assert body["counts"]["test"]["akiec"] == 0
    assert TrainingJob.objects.count() == 0


def test_a_job_from_the_active_version_is_refused_when_none_is_active(admin_api, enough_labelled):
    response = admin_api.post("/api/v1/training-jobs/", {"epochs": 1, "start_from": "active"}, format="json")

    assert response.status_code == 400 and "no active version" in response.json()["detail"]
    assert TrainingJob.objects.count() == 0


def test_only_one_job_may_be_open_at_a_time(admin_api, two_versions, enough_labelled):
    admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json")
    second = admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json")
    assert second.status_code == 409
    assert TrainingJob.objects.count() == 1


@pytest.mark.parametrize("body", [{"epochs": 0}, {"epochs": 10_000}, {"epochs": "many"}, {"start_from": "scratch"}])
def test_invalid_job_options_are_refused(admin_api, body):
    assert admin_api.post("/api/v1/training-jobs/", body, format="json").status_code == 400
    assert TrainingJob.objects.count() == 0


def test_cancelling_a_queued_job_cancels_it_at_once(admin_api, two_versions, enough_labelled):
    job_id = admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json").json()["id"]

    response = admin_api.post(f"/api/v1/training-jobs/{job_id}/cancel/")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json").status_code == 201


def passed_gate(version: ModelVersion, user) -> TrainingJob:
    return TrainingJob.objects.create(
        requested_by=user, status="succeeded", result_version=version, gate={"passed": True, "reasons": []}
    )


def test_an_admin_lists_versions_with_metrics_and_rolls_back_to_a_gated_one_in_one_call(
    admin_api, admin_user, two_versions
):
    v1, v2 = two_versions
    passed_gate(v1, admin_user)
    listing = admin_api.get("/api/v1/model-versions/").json()["results"]
    assert {v["name"]: v["is_active"] for v in listing} == {"v1": False, "v2": True}
    assert "balanced_accuracy" in listing[0]["metrics"] and "confidence_intervals_95" in listing[0]["metrics"]

    response = admin_api.post(f"/api/v1/model-versions/{v1.pk}/activate/")

    assert response.status_code == 200 and response.json()["is_active"] is True
    assert ModelVersion.active() == v1
    [activation] = response.json()["activations"]
    assert activation["activated_by"] == admin_user.username and activation["via"] == "api"
    assert activation["overrode_gate"] is False and activation["replaced"] == "v2"


def test_activating_a_never_gated_version_answers_409_with_the_reasons_unless_confirmed(admin_api, two_versions):
    v1, v2 = two_versions
    url = f"/api/v1/model-versions/{v1.pk}/activate/"

    refused = admin_api.post(url, {}, format="json")

    assert refused.status_code == 409
    assert refused.json()["code"] == "confirmation_required"
    assert "never checked by the quality gate" in refused.json()["reasons"][0]
    assert ModelVersion.active() == v2 and not v1.activations.exists()

    confirmed = admin_api.post(url, {"confirm": True}, format="json")

    assert confirmed.status_code == 200 and ModelVersion.active() == v1
    activation = confirmed.json()["activations"][0]
    assert activation["overrode_gate"] is True and activation["reasons"] == refused.json()["reasons"]


def test_activating_a_version_that_failed_the_gate_needs_a_confirmation(admin_api, admin_user, two_versions):
    v1, v2 = two_versions
    reasons = ["passed: balanced accuracy 0.80 ≥ 0.78", "failed: melanoma recall 0.700 < floor 0.800"]
    job = TrainingJob.objects.create(
        requested_by=admin_user, status="succeeded", result_version=v1, gate={"passed": False, "reasons": reasons}
    )

    refused = admin_api.post(f"/api/v1/model-versions/{v1.pk}/activate/")

    assert refused.status_code == 409
    assert refused.json()["reasons"] == [
        f"The quality gate of training job {job.pk} did not pass it: failed: melanoma recall 0.700 < floor 0.800"
    ]
    detail = admin_api.get(f"/api/v1/model-versions/{v1.pk}/").json()
    assert detail["gate"]["passed"] is False and detail["activation_warnings"] == refused.json()["reasons"]
    assert ModelVersion.active() == v2


def test_clinicians_cannot_label_retrain_or_activate(owner_api, owner, two_versions):
    v1, _ = two_versions
    assert owner_api.get("/api/v1/training-jobs/").status_code == 403
    assert owner_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json").status_code == 403
    assert owner_api.get("/api/v1/model-versions/").status_code == 403
    assert owner_api.post(f"/api/v1/model-versions/{v1.pk}/activate/", {"confirm": True}).status_code == 403
    assert TrainingJob.objects.count() == 0 and ModelVersion.active().name == "v2"


def test_anonymous_clients_get_401(anonymous_api):
    assert anonymous_api.get("/api/v1/training-jobs/").status_code == 401
    assert anonymous_api.get("/api/v1/model-versions/").status_code == 401
