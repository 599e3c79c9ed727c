"""Retraining jobs run in-process (plain functions): gate refusals, failures and cancellation change nothing served."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from classifier.models import ModelVersion, TrainingJob
from tests.factories import make_labelled_dataset
from worker.retraining import run_training_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def active_tiny_model(db, settings, tmp_path, tiny_model_root):
    """The tiny model, alone in a MODEL_ROOT of this test's own; jobs write new versions to a
    TRAINED_MODEL_ROOT of its own."""
    from classifier.registry import register_model_versions

    root = tmp_path / "models"
    shutil.copytree(tiny_model_root / "tiny-v1", root / "tiny-v1")
    settings.MODEL_ROOT, settings.TRAINED_MODEL_ROOT = root, tmp_path / "trained"
    register_model_versions(root)
    return ModelVersion.objects.get(name="tiny-v1")


@pytest.fixture
def labelled(owner, settings):
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 2  # one lesion of two images per class in val and test
    return make_labelled_dataset(owner)


def job_for(user, **options) -> TrainingJob:
    return TrainingJob.objects.create(requested_by=user, **{"epochs": 2, **options})


def test_a_job_registers_a_candidate_with_metrics_that_a_strict_gate_keeps_inactive(
    admin_user, active_tiny_model, labelled, settings
):
    settings.TRAINING_GATE_MIN_MELANOMA_RECALL = 1.01  # unreachable: the gate must refuse
    job = job_for(admin_user)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.progress == 100.0 and job.epoch >= 1
    candidate = job.result_version
    assert candidate is not None and not candidate.is_active
    assert ModelVersion.active() == active_tiny_model
    assert job.gate["passed"] is False and job.gate["activated"] is False
    assert any("floor 1.010" in reason for reason in job.gate["reasons"])
    test_metrics = candidate.card["metrics"]["test"]
    assert 0.0 <= test_metrics["balanced_accuracy"] <= 1.0
    assert candidate.card["metrics"]["incumbent_test"]["n_images"] == test_metrics["n_images"]
    assert candidate.model_path.is_file()
    assert "epoch 1" in job.log_tail
    # The new version carries its own out-of-distribution check and uncertainty report.
    assert candidate.card["ood"]["threshold"] == 1.0
    assert (candidate.model_path.parent / candidate.card["ood"]["file"]).is_file()
    assert candidate.card["uncertainty"]["top_probability_below"] == settings.UNCERTAIN_BELOW
    # ...and the flag's operating points, so a site can choose one for it too.
    targets = [point["target_sensitivity"] for point in candidate.card["operating_points"]["points"]]
    assert targets == [0.85, 0.90, 0.95]
    assert candidate.threshold_for(0.90) == candidate.malignant_threshold
    assert (candidate.model_path.parent / "model.tflite").is_file()  # serves with either backend
    assert [check["result"] for check in job.gate["checks"]][:2] == ["passed", "passed"]  # enough images to judge


def test_a_job_writes_its_version_to_the_trained_model_root_not_the_checkouts_models(
    admin_user, active_tiny_model, labelled, settings
):
    settings.TRAINING_GATE_MIN_MELANOMA_RECALL = 1.01
    shipped_before = sorted(path.name for path in settings.MODEL_ROOT.iterdir())
    job = job_for(admin_user, epochs=1)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    candidate = job.result_version
    assert candidate.root == "trained"
    assert candidate.model_path == settings.TRAINED_MODEL_ROOT / candidate.name / "model.keras"
    assert candidate.model_path.is_file()
    # Trained on the site's patients: the site's account's alone.
    assert stat.S_IMODE(candidate.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(candidate.model_path.stat().st_mode) == 0o600
    assert sorted(path.name for path in settings.MODEL_ROOT.iterdir()) == shipped_before
    # Registering again (migrate, register_models) finds it there and keeps it as it is.
    from classifier.registry import register_model_versions

    assert register_model_versions() == []
    assert ModelVersion.objects.get(pk=candidate.pk).root == "trained"


def test_a_permissive_gate_activates_the_new_version(admin_user, active_tiny_model, labelled, settings):
    settings.TRAINING_GATE_MIN_MELANOMA_RECALL = 0.0
    settings.TRAINING_GATE_MAX_BALANCED_ACCURACY_DROP = 1.0
    job = job_for(admin_user, epochs=1)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    assert job.gate["passed"] is True
    assert ModelVersion.active() == job.result_version
    activation = job.result_version.activations.get()
    assert (activation.via, activation.activated_by, activation.replaced) == ("gate", None, active_tiny_model)
    assert activation.reasons == [f"passed the quality gate of training job {job.pk}"]


def test_a_job_without_enough_labelled_images_fails_and_changes_nothing(admin_user, active_tiny_model):
    job = job_for(admin_user)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    assert job.status == "failed"
    assert "Not enough labelled images" in job.error
    assert ModelVersion.objects.count() == 1 and ModelVersion.active() == active_tiny_model


def test_a_job_that_crashes_records_its_error_and_leaves_no_version_folder(
    admin_user, active_tiny_model, labelled, monkeypatch, settings
):
    folders_before = set(settings.MODEL_ROOT.iterdir())
    settings.TRAINED_MODEL_ROOT.mkdir()

    def explode(*args, **kwargs):
        raise RuntimeError("simulated out-of-memory")

    monkeypatch.setattr("training.retrain.build_calibrated_model", explode)
    job = job_for(admin_user)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    assert job.status == "failed" and "simulated out-of-memory" in job.error
    assert ModelVersion.active() == active_tiny_model and ModelVersion.objects.count() == 1
    assert set(settings.MODEL_ROOT.iterdir()) == folders_before
    assert list(settings.TRAINED_MODEL_ROOT.iterdir()) == []  # no partial version left behind


def test_a_cancelled_queued_job_never_runs(admin_user, active_tiny_model, labelled):
    job = job_for(admin_user)
    job.request_cancel()
    assert job.status == "cancelled"

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    assert job.status == "cancelled" and job.started_at is None


def test_a_running_job_stops_at_its_next_epoch_when_cancelled(admin_user, active_tiny_model, labelled, monkeypatch):
    job = job_for(admin_user, epochs=5)
    real_report = TrainingJob.report_progress

    def cancel_after_first_epoch(self, epoch, progress, metrics):
        real_report(self, epoch, progress, metrics)
        TrainingJob.objects.filter(pk=self.pk).update(cancel_requested=True)

    monkeypatch.setattr(TrainingJob, "report_progress", cancel_after_first_epoch)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    assert job.status == "cancelled" and job.epoch == 1
    assert job.result_version is None and ModelVersion.objects.count() == 1


def test_a_job_cannot_start_from_the_active_version_when_there_is_none(admin_user, labelled):
    job = job_for(admin_user)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    assert job.status == "failed" and "no active version" in job.error


def test_retraining_a_logit_adjusted_version_keeps_its_loss(admin_user, active_tiny_model, labelled, settings):
    card_path = active_tiny_model.model_path.parent / "card.json"
    card = json.loads(card_path.read_text())
    card["recipe"] = {"logit_adjustment": 1.0, "imbalance_handling": "logit-adjusted loss (tau 1 x log class prior)"}
    card_path.write_text(json.dumps(card))
    settings.TRAINING_GATE_MIN_MELANOMA_RECALL = 1.01  # keep the candidate inactive: only its recipe matters here
    job = job_for(admin_user, epochs=1)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    recipe = job.result_version.card["recipe"]
    assert recipe["logit_adjustment"] == 1.0
    assert recipe["imbalance"] == "none"  # no class weights on top of the adjustment
    assert recipe["imbalance_handling"].startswith("logit-adjusted loss")


def test_retraining_a_class_weighted_version_keeps_its_weights(admin_user, active_tiny_model, labelled, settings):
    settings.TRAINING_GATE_MIN_MELANOMA_RECALL = 1.01
    job = job_for(admin_user, epochs=1)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    recipe = job.result_version.card["recipe"]
    assert (recipe["logit_adjustment"], recipe["imbalance"]) == (0.0, "balanced")
    assert recipe["imbalance_handling"] == "class-weighted loss ('balanced')"


def test_retraining_reads_the_weighting_from_the_recipe_not_from_its_description(
    admin_user, active_tiny_model, labelled, settings
):
    card_path = active_tiny_model.model_path.parent / "card.json"
    card = json.loads(card_path.read_text())
    card["recipe"] = {"loss_weights": "sqrt", "imbalance_handling": "class-weighted loss ('balanced')"}
    card_path.write_text(json.dumps(card))
    settings.TRAINING_GATE_MIN_MELANOMA_RECALL = 1.01
    job = job_for(admin_user, epochs=1)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    recipe = job.result_version.card["recipe"]
    assert (recipe["loss_weights"], recipe["imbalance_handling"]) == ("sqrt", "class-weighted loss ('sqrt')")


SHIPPED_CARD = Path(__file__).resolve().parent.parent / "models" / "mobilenetv2-150-v3" / "card.json"


def test_a_retrained_versions_card_has_the_fields_of_a_shipped_one(admin_user, active_tiny_model, labelled, settings):
    settings.TRAINING_GATE_MIN_MELANOMA_RECALL = 1.01
    shipped = json.loads(SHIPPED_CARD.read_text())
    job = job_for(admin_user, epochs=1)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    card = job.result_version.card
    assert set(card) == set(shipped)
    assert set(card["metrics"]) >= {"how_measured", "test", "val", "ece_before_temperature", "ece_after_temperature"}
    assert {"dataset", "licence"} <= set(card["trained_on"])
    assert card["recipe"]["loss_weights"] == "balanced"  # the tiny version's card records no weighting
    assert card["class_names"] == shipped["class_names"] and card["input"] == shipped["input"]


def test_a_head_retrained_on_a_version_with_layer_cam_and_a_lesion_mask_serves_both(
    admin_user, labelled, settings, tmp_path
):
    """The network up to the head is the base's, so its map and its mask head are too; no figures are claimed."""
    import numpy as np

    from classifier.registry import register_model_versions
    from tests.tiny_model import add_tiny_lesion_mask, save_tiny_mobilenet_version
    from worker.model_cache import load_model

    root = tmp_path / "models"
    add_tiny_lesion_mask(save_tiny_mobilenet_version(root, "tiny-mask-v1", seed=5))
    settings.MODEL_ROOT, settings.TRAINED_MODEL_ROOT = root, tmp_path / "trained"
    settings.TRAINING_GATE_MIN_MELANOMA_RECALL = 1.01
    register_model_versions(root)
    assert ModelVersion.active().name == "tiny-mask-v1"
    job = job_for(admin_user, epochs=1)

    run_training_job(job.pk, task_id="t1")

    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    card, folder = job.result_version.card, job.result_version.folder
    assert card["explanation"]["method"] == "layer-cam" and card["explanation"]["figures"] is None
    assert card["lesion_mask"]["layer"] == "block_13_expand_relu"
    assert "tiny-mask-v1" in card["lesion_mask"]["how_measured"]
    assert (folder / card["lesion_mask"]["file"]).is_file()
    pixels = np.full((2, 32, 32, 3), 120, np.float32)
    for backend in ("keras", "litert"):
        outputs = load_model(job.result_version.name, folder, threads=1, backend=backend).analyse(pixels)
        assert outputs.lesion_grids.shape == (2, 16, 16)
