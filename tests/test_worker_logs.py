"""A worker logs which prediction it finished (ids, version, time), never what the model found."""

from __future__ import annotations

import logging
import re

from classifier.models import Prediction
from tests.factories import make_prediction
from training.classes import CLASSES, FULL_NAMES
from worker.inference import run_predictions


def test_a_finished_prediction_is_logged_by_its_ids_without_its_class_or_probabilities(
    owner, active_tiny_model, caplog
):
    prediction = make_prediction(owner)
    with caplog.at_level(logging.DEBUG):
        run_predictions([prediction.pk], task_id="t-logs")

    done = Prediction.objects.get(pk=prediction.pk)
    assert done.status == "done"
    lines = [record for record in caplog.records if record.name.startswith(("worker", "classifier"))]
    finished = [record for record in lines if "done" in record.getMessage()]
    assert finished, [record.getMessage() for record in lines]
    assert finished[0].getMessage().startswith(f"prediction {done.pk}: done (image {done.image_id}, version tiny-v1")
    assert finished[0].image_id == done.image_id and finished[0].model_version == "tiny-v1"
    findings = [rf"\b{code}\b" for code in CLASSES] + [re.escape(name) for name in FULL_NAMES.values()]
    findings += [re.escape(f"{value:.3f}") for value in [*done.probabilities.values(), done.malignant_probability]]
    for record in lines:
        # The message and every extra a formatter may print (timestamps, numbers of its own, are not findings).
        extras = [str(value) for key, value in vars(record).items() if key not in ("created", "msecs",
                  "relativeCreated", "thread", "process", "lineno")]  # fmt: skip
        text = " ".join([record.getMessage(), *extras])
        assert not [pattern for pattern in findings if re.search(pattern, text)], record.getMessage()
