"""worker.inference as plain functions: claiming, storing results, failing clearly."""

from __future__ import annotations

import pytest

from classifier.models import Prediction
from tests.factories import make_prediction
from worker.inference import NO_ACTIVE_MODEL, fail_predictions, run_predictions

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


def test_a_task_fills_its_batch_with_other_queued_predictions_oldest_first(owner, active_tiny_model, settings):
    settings.INFERENCE_BATCH_SIZE = 3
    first, second, third, fourth, last = (make_prediction(owner) for _ in range(5))

    assert run_predictions([last.pk], task_id="t-last", fill_batch=True) == [first.pk, second.pk, last.pk]
    assert Prediction.objects.get(pk=first.pk).status == "done"
    assert Prediction.objects.get(pk=third.pk).status == "queued"
    # The first upload's own task arrives: its row is done, so it takes the next ones.
    assert run_predictions([first.pk], task_id="t-first", fill_batch=True) == [third.pk, fourth.pk]
    assert run_predictions([third.pk], task_id="t-third", fill_batch=True) == []
    assert set(Prediction.objects.values_list("status", flat=True)) == {"done"}
    assert set(Prediction.objects.values_list("attempts", flat=True)) == {1}


def test_a_task_fills_its_batch_with_others_beside_its_own_oldest_rows(owner, active_tiny_model, settings):
    settings.INFERENCE_BATCH_SIZE = 3
    first, second, third, fourth = (make_prediction(owner) for _ in range(4))

    assert run_predictions([first.pk], task_id="t-first", fill_batch=True) == [first.pk, second.pk, third.pk]
    assert Prediction.objects.get(pk=fourth.pk).status == "queued"


def test_without_fill_batch_a_task_runs_only_its_own_predictions(owner, active_tiny_model):
    mine, other = make_prediction(owner), make_prediction(owner)

    assert run_predictions([mine.pk], task_id="t") == [mine.pk]
    assert Prediction.objects.get(pk=other.pk).status == "queued"


def test_filling_a_batch_never_takes_a_row_another_task_holds(owner, active_tiny_model):
    held_elsewhere, mine = make_prediction(owner), make_prediction(owner)
    Prediction.claim([held_elsewhere.pk], task_id="other")

    assert run_predictions([mine.pk], task_id="t", fill_batch=True) == [mine.pk]
    assert Prediction.objects.get(pk=held_elsewhere.pk).task_id == "other"
    assert Prediction.objects.get(pk=held_elsewhere.pk).status == "running"


def test_a_redelivered_task_also_resumes_the_rows_it_took_to_fill_its_batch(owner, active_tiny_model):
    own, taken = make_prediction(owner), make_prediction(owner)
    held = Prediction.claim([own.pk], task_id="task-1", also_queued=5)  # then it died
    assert [prediction.pk for prediction in held] == [own.pk, taken.pk]

    assert run_predictions([taken.pk], task_id="task-2", fill_batch=True) == []  # the row's own task
    assert run_predictions([own.pk], task_id="task-1", fill_batch=True) == [own.pk, taken.pk]  # the redelivery
    assert [p.attempts for p in Prediction.objects.order_by("id")] == [2, 2]


def test_a_failing_task_fails_the_rows_it_took_to_fill_its_batch_too(owner):
    own, taken, untouched = make_prediction(owner), make_prediction(owner), make_prediction(owner)
    Prediction.claim([own.pk], task_id="task-1", also_queued=1)

    fail_predictions("task-1", "Classification took too long and was stopped.")

    assert [p.status for p in Prediction.objects.order_by("id")] == ["failed", "failed", "queued"]
    assert Prediction.objects.get(pk=taken.pk).error == "Classification took too long and was stopped."
    assert Prediction.objects.get(pk=untouched.pk).task_id == ""


def _reading(version, nv: float) -> dict:
    probabilities = {"akiec": 0.0, "bcc": 0.0, "bkl": 0.0, "df": 0.0, "mel": 1.0 - nv, "nv": nv, "vasc": 0.0}
    explanation = {"method": "grad-cam", "class": "nv", "grid": [[0.5, 1.0]], "box": [0, 0, 1, 1]}
    return Prediction.done_fields(
        version, probabilities, 1.0 - nv, 4.2, is_uncertain=nv < 0.6, ood_score=1.5, explanation=explanation
    )


def test_finish_many_stores_every_row_the_task_holds_in_one_statement(owner, active_tiny_model):
    predictions = Prediction.claim([make_prediction(owner).pk for _ in range(3)], task_id="t")
    rows = [
        (prediction, _reading(active_tiny_model, nv))
        for prediction, nv in zip(predictions, (0.9, 0.55, 0.2), strict=True)
    ]

    stored = Prediction.finish_many("t", rows)

    assert [p.pk for p in stored] == [p.pk for p in predictions]
    saved = list(Prediction.objects.order_by("id"))
    assert [p.status for p in saved] == ["done"] * 3
    assert [p.top_class for p in saved] == ["nv", "nv", "mel"]
    assert [p.is_uncertain for p in saved] == [False, True, True]
    assert saved[2].probabilities["mel"] == pytest.approx(0.8)
    assert saved[2].malignant_probability == pytest.approx(0.8)
    assert saved[2].is_malignant is True and saved[0].is_malignant is False
    assert saved[0].explanation["grid"] == [[0.5, 1.0]]
    assert {p.model_version_id for p in saved} == {active_tiny_model.pk}
    assert len({p.finished_at for p in saved}) == 1 and saved[0].finished_at is not None
    # The instances returned carry what was stored, as mark_done's do.
    assert stored[2].status == "done" and stored[2].top_class == "mel"


def test_finish_many_leaves_rows_that_another_task_took_meanwhile(owner, active_tiny_model):
    mine, lost = Prediction.claim([make_prediction(owner).pk for _ in range(2)], task_id="t")
    # A sweep re-queued one row and another task took it before this one finished.
    Prediction.objects.filter(pk=lost.pk).update(status="queued", task_id="")
    Prediction.claim([lost.pk], task_id="other")

    stored = Prediction.finish_many("t", [(p, _reading(active_tiny_model, 0.9)) for p in (mine, lost)])

    assert [p.pk for p in stored] == [mine.pk]
    assert Prediction.objects.get(pk=mine.pk).status == "done"
    taken = Prediction.objects.get(pk=lost.pk)
    assert (taken.status, taken.task_id, taken.probabilities) == ("running", "other", None)
    assert lost.status == "running"  # the instance it did not store is left as it was


def test_finish_many_refuses_rows_that_set_different_fields(owner, active_tiny_model):
    first, second = Prediction.claim([make_prediction(owner).pk for _ in range(2)], task_id="t")
    partial = {"status": "done", "error": ""}

    with pytest.raises(ValueError, match="same fields"):
        Prediction.finish_many("t", [(first, _reading(active_tiny_model, 0.9)), (second, partial)])
    assert set(Prediction.objects.values_list("status", flat=True)) == {"running"}


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
