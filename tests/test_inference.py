"""worker.inference as plain functions: claiming, storing results, failing clearly."""

from __future__ import annotations

import pytest

from classifier.models import Prediction
from tests.factories import make_prediction
from worker.inference import NO_ACTIVE_MODEL, run_predictions

pytestmark = pytest.mark.django_db


def test_it_stores_probabilities_that_sum_to_one_and_the_version_that_made_them(owner, active_tiny_model):
    prediction = make_prediction(owner)

    assert run_predictions([prediction.pk], task_id="task-1") == [prediction.pk]

    prediction.refresh_from_db()
    assert prediction.status == "done"
    assert set(prediction.probabilities) == set(active_tiny_model.card["classes"])
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction.top_class == max(prediction.probabilities, key=prediction.probabilities.get)
    expected_malignant = sum(prediction.probabilities[c] for c in ("akiec", "bcc", "mel"))
    assert prediction.malignant_probability == pytest.approx(expected_malignant)
    assert prediction.is_malignant == (expected_malignant >= active_tiny_model.malignant_threshold)
    assert prediction.model_version == active_tiny_model
    assert prediction.started_at and prediction.finished_at and prediction.inference_ms > 0


def test_a_batch_is_inferred_in_one_call_and_matches_single_inference(owner, active_tiny_model):
    predictions = [make_prediction(owner) for _ in range(5)]
    run_predictions([p.pk for p in predictions], task_id="batch")
    batch_probs = [Prediction.objects.get(pk=p.pk).probabilities for p in predictions]

    Prediction.objects.update(status="queued", task_id="")
    for p in predictions:
        run_predictions([p.pk], task_id=f"single-{p.pk}")

    for p, batched in zip(predictions, batch_probs, strict=True):
        single = Prediction.objects.get(pk=p.pk).probabilities
        assert single == pytest.approx(batched, abs=1e-5)


def test_a_second_delivery_of_a_finished_task_changes_nothing(owner, active_tiny_model):
    prediction = make_prediction(owner)
    run_predictions([prediction.pk], task_id="task-1")
    finished_at = Prediction.objects.get(pk=prediction.pk).finished_at

    assert run_predictions([prediction.pk], task_id="task-1") == []
    assert run_predictions([prediction.pk], task_id="task-2") == []
    assert Prediction.objects.get(pk=prediction.pk).finished_at == finished_at


def test_a_redelivered_task_resumes_the_rows_its_dead_worker_had_claimed(owner, active_tiny_model):
    prediction = make_prediction(owner)
    Prediction.claim([prediction.pk], task_id="task-1")  # then the worker was killed

    assert run_predictions([prediction.pk], task_id="task-2") == []  # another task may not take it
    assert run_predictions([prediction.pk], task_id="task-1") == [prediction.pk]  # the redelivery may
    assert Prediction.objects.get(pk=prediction.pk).attempts == 2


def test_without_an_active_model_the_prediction_fails_with_a_clear_message(owner):
    prediction = make_prediction(owner)

    run_predictions([prediction.pk], task_id="t")

    prediction.refresh_from_db()
    assert prediction.status == "failed"
    assert prediction.error == NO_ACTIVE_MODEL
    assert "No active model" in prediction.error


def test_a_missing_stored_image_fails_only_that_prediction(owner, active_tiny_model):
    broken, fine = make_prediction(owner), make_prediction(owner)
    broken.image.file.storage.delete(broken.image.file.name)

    run_predictions([broken.pk, fine.pk], task_id="t")

    assert Prediction.objects.get(pk=broken.pk).status == "failed"
    assert "could not be read" in Prediction.objects.get(pk=broken.pk).error
    assert Prediction.objects.get(pk=fine.pk).status == "done"


def test_an_unloadable_model_fails_predictions_with_the_reason(owner, settings, tmp_path):
    from classifier.registry import register_model_versions
    from tests.tiny_model import write_card_only

    write_card_only(tmp_path, "broken-v1")
    settings.MODEL_ROOT = tmp_path
    register_model_versions(tmp_path)
    prediction = make_prediction(owner)

    run_predictions([prediction.pk], task_id="t")

    prediction.refresh_from_db()
    assert prediction.status == "failed"
    assert "broken-v1 could not be loaded" in prediction.error


def test_the_model_is_loaded_once_per_process_and_reloaded_when_the_version_changes(tmp_path):
    from tests.tiny_model import save_tiny_version
    from worker.model_cache import get_model

    save_tiny_version(tmp_path, "cache-v1", seed=1)
    save_tiny_version(tmp_path, "cache-v2", seed=2)

    first = get_model("cache-v1", tmp_path / "cache-v1")
    assert get_model("cache-v1", tmp_path / "cache-v1") is first
    second = get_model("cache-v2", tmp_path / "cache-v2")
    assert second is not first and second.version == "cache-v2"
