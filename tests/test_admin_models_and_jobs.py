"""The admin pages for model versions (compare, activate) and training jobs (start, watch, cancel)."""

from __future__ import annotations

import re

import pytest

from classifier.models import ModelActivation, ModelVersion, Prediction, TrainingJob
from classifier.quality_gate import quality_gate
from tests.factories import make_image, make_labelled_dataset, make_prediction
from tests.tiny_model import write_card_only
from training.classes import CLASSES

pytestmark = pytest.mark.django_db


def card_metrics(mel_recall=0.85, images_per_class=40) -> dict:
    per_class = {code: {"recall": 0.75, "precision": 0.7, "support": images_per_class} for code in CLASSES}
    per_class["mel"]["recall"] = mel_recall
    return {
        "n_images": images_per_class * len(CLASSES),
        "balanced_accuracy": (6 * 0.75 + mel_recall) / 7,
        "macro_f1": 0.6612345,
        "melanoma_recall_at_threshold": mel_recall,
        "ece": 0.0346646713401505,
        "per_class": per_class,
    }


@pytest.fixture
def versions(tmp_path, settings):
    from classifier.registry import register_model_versions

    write_card_only(tmp_path, "v1", created="2026-01-01T00:00:00Z")
    write_card_only(tmp_path, "v2", created="2026-02-01T00:00:00Z")
    settings.MODEL_ROOT = tmp_path
    register_model_versions(tmp_path)
    ModelVersion.objects.filter(name="v1").update(card={"metrics": {"test": card_metrics(), "val": card_metrics()}})
    return ModelVersion.objects.get(name="v1"), ModelVersion.objects.get(name="v2")


def gated(version: ModelVersion, admin_user, **metrics) -> TrainingJob:
    """Record a finished training job whose quality gate judged the version."""
    candidate, incumbent = card_metrics(**metrics), card_metrics(mel_recall=0.70)
    decision = quality_gate(candidate, incumbent, 0.02, 0.80, 10, validation=card_metrics())
    return TrainingJob.objects.create(
        requested_by=admin_user,
        status="succeeded",
        result_version=version,
        gate={**decision.as_dict(), "activated": False},
        metrics={"test": candidate, "incumbent_test": incumbent},
    )


def test_the_version_list_shows_figures_with_held_out_counts_and_confidence_intervals(admin_client, versions):
    page = admin_client.get("/admin/classifier/modelversion/").content.decode()

    # v1: 7 classes of 40 images, recall 0.75 (melanoma 0.85): balanced accuracy and melanoma recall.
    assert "0.764 (0.713–0.815)" in page
    assert "0.850 (0.709–0.929)" in page
    assert "280<br>" in page and "40 akiec, 40 bcc" in page
    assert "Wilson score intervals" in page and "normal approximation of the mean" in page
    assert "0.035" in page and "0.0346646713401505" not in page
    assert "never gated" in page


def test_a_version_that_passed_the_gate_activates_in_one_click_and_the_activation_is_recorded(
    admin_client, admin_user, versions
):
    v1, v2 = versions
    job = gated(v1, admin_user)
    assert job.gate["passed"] is True

    response = admin_client.post(f"/admin/classifier/modelversion/{v1.pk}/activate/")

    assert response.status_code == 302
    assert ModelVersion.active() == v1
    activation = v1.activations.get()
    assert (activation.activated_by, activation.via, activation.overrode_gate) == (admin_user, "admin", False)
    assert activation.replaced == v2 and activation.activated_at is not None


def test_a_never_gated_version_asks_for_a_confirmation_listing_why_before_it_replaces_the_active_one(
    admin_client, admin_user, versions
):
    v1, v2 = versions
    url = f"/admin/classifier/modelversion/{v1.pk}/activate/"

    asked = admin_client.post(url)

    assert asked.status_code == 200
    page = asked.content.decode()
    assert "v1 was never checked by the quality gate" in page and "Activate v1 anyway" in page
    assert ModelVersion.active() == v2 and not ModelActivation.objects.filter(version=v1).exists()

    confirmed = admin_client.post(url, {"confirm": "yes"})

    assert confirmed.status_code == 302
    assert ModelVersion.active() == v1
    activation = v1.activations.get()
    assert activation.overrode_gate is True and activation.activated_by == admin_user
    assert activation.reasons and "never checked by the quality gate" in activation.reasons[0]


def test_a_version_that_failed_the_gate_lists_the_failed_checks_before_activating(admin_client, admin_user, versions):
    v1, v2 = versions
    gated(v1, admin_user, mel_recall=0.70)

    page = admin_client.post(f"/admin/classifier/modelversion/{v1.pk}/activate/").content.decode()

    assert "melanoma recall 0.700 &lt; floor 0.800" in page
    assert "balanced accuracy" not in page.split("activation-reasons")[1].split("</ul>")[0]  # it passed that one
    assert ModelVersion.active() == v2


def test_the_first_activation_when_none_is_active_needs_no_confirmation(admin_client, admin_user, versions):
    v1, v2 = versions
    ModelVersion.objects.update(is_active=False)

    response = admin_client.post(f"/admin/classifier/modelversion/{v1.pk}/activate/")

    assert response.status_code == 302 and ModelVersion.active() == v1
    assert v1.activations.get().overrode_gate is False


def test_activation_needs_a_post(admin_client, versions):
    v1, _ = versions
    assert admin_client.get(f"/admin/classifier/modelversion/{v1.pk}/activate/").status_code == 405
    assert ModelVersion.active().name == "v2"


def test_a_clinician_cannot_reach_the_admin_activation(client, owner, versions):
    v1, _ = versions
    client.force_login(owner)
    client.post(f"/admin/classifier/modelversion/{v1.pk}/activate/", {"confirm": "yes"})
    assert ModelVersion.active().name == "v2"


def test_the_version_page_shows_its_figures_gate_and_activations_as_tables(admin_client, admin_user, versions):
    v1, _ = versions
    gated(v1, admin_user, mel_recall=0.70)
    admin_client.post(f"/admin/classifier/modelversion/{v1.pk}/activate/", {"confirm": "yes"})

    page = admin_client.get(f"/admin/classifier/modelversion/{v1.pk}/change/").content.decode()

    assert "&quot;per_class&quot;" not in page and "&quot;checks&quot;" not in page  # no raw JSON
    assert "Melanocytic nevus (nv)" in page and "0.750 (0.598–0.858)" in page  # per-class recall and its interval
    assert re.search(r"<th[^>]*>Melanoma recall</th><td>failed</td>", page)
    assert re.search(r"<th[^>]*>Balanced accuracy</th><td>passed</td>", page)
    assert "Activations" in page and "admin" in page and "The quality gate of training job" in page


def test_the_training_job_page_shows_metrics_and_gate_as_tables(admin_client, admin_user, versions):
    v1, _ = versions
    job = gated(v1, admin_user, mel_recall=0.70)
    job.metrics["history"] = [{"epoch": 1, "loss": 1.2345678, "val_balanced_accuracy": 0.961390495300293}]
    job.save()

    page = admin_client.get(f"/admin/classifier/trainingjob/{job.pk}/change/").content.decode()

    assert "0.961390495300293" not in page and "0.961" in page
    assert re.search(r"<th[^>]*>Held-out images</th><td>passed</td>", page)
    assert re.search(r"<th[^>]*>Melanoma recall</th><td>failed</td>", page)
    assert "&quot;history&quot;" not in page and "&quot;checks&quot;" not in page  # no raw JSON


@pytest.fixture
def enough_labelled(owner, settings):
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 1
    return make_labelled_dataset(owner, train_lesions_per_class=1, images_per_lesion=1)


def test_an_admin_starts_a_job_from_the_admin_and_can_cancel_it(admin_client, versions, enough_labelled):
    response = admin_client.post("/admin/classifier/trainingjob/start/", {"start_from": "active", "epochs": 2})

    job = TrainingJob.objects.get()
    assert response.status_code == 302 and (job.epochs, job.status) == (2, "queued")
    page = admin_client.get(f"/admin/classifier/trainingjob/{job.pk}/change/").content.decode()
    assert 'http-equiv="refresh"' in page and "Cancel this job" in page

    admin_client.post(f"/admin/classifier/trainingjob/{job.pk}/cancel/")
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_a_job_without_enough_labelled_images_is_refused_on_the_start_form(admin_client, owner, versions, settings):
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 10
    make_image(owner, diagnosis="mel", diagnosis_method="histo")

    response = admin_client.post("/admin/classifier/trainingjob/start/", {"start_from": "active", "epochs": 2})

    assert response.status_code == 200
    assert TrainingJob.objects.count() == 0
    page = response.content.decode()
    assert "Not enough labelled images to train and evaluate" in page and "10 in test" in page
    assert 'class="errorlist nonfield"' in page


def test_the_start_page_has_one_heading_names_the_active_version_and_counts_labelled_images(
    admin_client, owner, versions, settings
):
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 10
    make_image(owner, diagnosis="mel", diagnosis_method="histo")

    page = admin_client.get("/admin/classifier/trainingjob/start/").content.decode()

    assert page.count("Start a retraining job</h1>") == 1
    assert "The active model version (v2)</option>" in page and "(active))" not in page
    assert "Validation (needs 10)" in page and "too few" in page


def test_a_second_job_is_refused_while_one_is_open(admin_client, versions, enough_labelled):
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


def test_an_images_admin_page_shows_its_readings_formatted_and_offers_no_add_prediction(admin_client, owner):
    prediction = make_prediction(owner, status="done", top_probability=0.961390495300293, malignant_probability=0.1234)

    page = admin_client.get(f"/admin/classifier/lesionimage/{prediction.image_id}/change/").content.decode()

    assert "96.1 %" in page and "0.123" in page and "0.961390495300293" not in page
    # The admin's inline script offers "Add another Prediction" only below MAX_NUM_FORMS.
    assert 'name="predictions-MAX_NUM_FORMS" value="0"' in page


def test_a_predictions_admin_page_shows_its_probabilities_as_a_table(admin_client, owner):
    prediction = make_prediction(owner, status="done", top_class="mel")

    page = admin_client.get(f"/admin/classifier/prediction/{prediction.pk}/change/").content.decode()

    assert re.search(r"<th[^>]*>Melanoma \(mel\)</th><td>70.0 %</td>", page)
    assert "0.049999" not in page
