"""A version whose card names a fitted malignancy score is served with it: a real worker stores that
score, flags by it, and the result page says what the number means for that version."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from classifier.models import ModelVersion, Prediction
from classifier.registry import register_model_versions
from tests.conftest import wait_for
from tests.images import upload
from tests.tiny_model import save_tiny_version, tiny_card
from training.card import write_card
from training.classes import CLASSES
from training.malignancy import FEATURES, SUMMED, from_card_entry

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Leans hard on "not a nevus": far from the sum, so the test can tell which one the worker used.
FITTED = {
    "kind": "logistic",
    "features": list(FEATURES),
    "weights": [0.0, 0.1, 0.0, 0.0, 0.2, -1.5, 0.0, 0.6],
    "intercept": -2.0,
    "fitted_on": "a test fixture",
}


def classified(client, url):
    body = client.get(url).json()
    return body if body["status"] in ("done", "failed") else None


def test_the_worker_scores_and_flags_with_the_card_s_score(
    celery_worker, owner_api, owner_web, tiny_model_root, settings
):
    settings.MODEL_ROOT = tiny_model_root
    folder = save_tiny_version(tiny_model_root, "tiny-fitted-score")
    write_card(folder, {**tiny_card("tiny-fitted-score", threshold=0.05), "malignancy_score": FITTED})
    score = from_card_entry(FITTED)
    try:
        register_model_versions(tiny_model_root)
        ModelVersion.objects.get(name="tiny-fitted-score").activate()
        picture = upload("lesion.png", size=(200, 150), seed=3)
        response = owner_api.post("/api/v1/images/", {"file": [picture]}, format="multipart")
        body = wait_for(lambda: classified(owner_api, response.json()["images"][0]["prediction"]["url"]), 90)

        assert body["status"] == "done", celery_worker.log()
        assert body["model_version"] == "tiny-fitted-score"
        probabilities = np.array([[body["probabilities"][code] for code in CLASSES]])
        expected = float(score.of(probabilities)[0])
        assert abs(expected - float(SUMMED.of(probabilities)[0])) > 0.01  # the test can tell which was used
        assert body["malignant_probability"] == pytest.approx(expected, abs=1e-4)
        assert body["is_malignant"] == (expected >= 0.05)

        prediction = Prediction.objects.get(pk=body["id"])
        page = owner_web.get(f"/predictions/{prediction.pk}/").content.decode()
        assert score.description in page
        assert SUMMED.description not in page
    finally:
        shutil.rmtree(folder)
