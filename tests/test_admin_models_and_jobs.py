"""The admin pages for model versions (compare, activate) and training jobs (start, watch, cancel)."""

from __future__ import annotations

import pytest

from classifier.models import ModelVersion, Prediction, TrainingJob
from tests.factories import make_prediction
from tests.tiny_model import write_card_only

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(tmp_path, settings):
    from classifier.registry import register_model_versions

    write_card_only(tmp_path, "v1", created="2026-01-01T00:00:00Z")
    write_card_only(tmp_path, "v2", created="2026-02-01T00:00:00Z")
    settings.MODEL_ROOT = tmp_path
    register_model_versions(tmp_path)
    ModelVersion.objects.filter(name="v1").update(card={"metrics": {"test": {"balanced_accuracy": 0.712}}})
    return ModelVersion.objects.get(name="v1"), ModelVersion.objects.get(name="v2")


def test_the_version_list_compares_metrics_and_activates_in_one_click(admin_client, versions):
    v1, v2 = versions
    page = admin_client.get("/admin/classifier/modelversion/").content.decode()
    assert "0.712" in page and 'formaction="/admin/classifier/modelversion/' in page

    response = admin_client.post(f"/admin/classifier/modelversion/{v1.pk}/activate/")

    assert response.status_code == 302
    assert ModelVersion.active() == v1


def test_activation_needs_a_post(admin_client, versions):
    v1, _ = versions
    assert admin_client.get(f"/admin/classifier/modelversion/{v1.pk}/activate/").status_code == 405
    assert ModelVersion.active().name == "v2"


def test_a_clinician_cannot_reach_the_admin_activation(client, owner, versions):
    v1, _ = versions
    client.force_login(owner)
    client.post(f"/admin/classifier/modelversion/{v1.pk}/activate/")
    assert ModelVersion.active().name == "v2"


def test_an_admin_starts_a_job_from_the_admin_and_can_cancel_it(admin_client):
    response = admin_client.post("/admin/classifier/trainingjob/start/", {"start_from": "active", "epochs": 2})

    job = TrainingJob.objects.get()
    assert response.status_code == 302 and (job.epochs, job.status) == (2, "queued")
    page = admin_client.get(f"/admin/classifier/trainingjob/{job.pk}/change/").content.decode()
    assert 'http-equiv="refresh"' in page and "Cancel this job" in page

    admin_client.post(f"/admin/classifier/trainingjob/{job.pk}/cancel/")
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_a_second_job_is_refused_while_one_is_open(admin_client):
    admin_client.post("/admin/classifier/trainingjob/start/", {"start_from": "active", "epochs": 2})
    admin_client.post("/admin/classifier/trainingjob/start/", {"start_from": "active", "epochs": 2})
    assert TrainingJob.objects.count() == 1


def test_rerunning_predictions_queues_new_ones_with_the_active_version(admin_client, owner, versions):
    _, v2 = versions
    old = make_prediction(owner, status="done", top_class="nv")

    admin_client.post("/admin/classifier/prediction/", {"action": "rerun_selected", "_selected_action": [str(old.pk)]})

    new = Prediction.objects.exclude(pk=old.pk).get()
    assert (new.image_id, new.status, new.model_version) == (old.image_id, "queued", v2)
    assert Prediction.objects.filter(pk=old.pk, status="done").exists()  # history is kept
