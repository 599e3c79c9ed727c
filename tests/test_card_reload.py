"""A warm worker follows its version's card: refreshed in place (an out-of-distribution check added), it is
loaded again on the next task, with a real worker process."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from classifier.models import ModelVersion
from classifier.registry import register_model_versions
from tests.conftest import wait_for
from tests.images import upload
from tests.tiny_model import save_tiny_version, tiny_card
from training.card import write_card
from training.classes import CLASSES
from training.ood import OOD_FILENAME, fit_detector, save_detector

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def classified(client, summary_url):
    body = client.get(summary_url).json()
    return body if body["status"] in ("done", "failed") else None


def upload_and_wait(client, seed: int) -> dict:
    response = client.post("/api/v1/images/", {"file": [upload(f"m{seed}.png", seed=seed)]}, format="multipart")
    return wait_for(lambda: classified(client, response.json()["images"][0]["prediction"]["url"]), timeout=90)


def add_ood_check(folder, version: str) -> None:
    """What training.fit_ood does to a version's folder: a detector file, and the card naming it."""
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (140, 8)).astype(np.float32)  # the tiny model's pooled features are 8 wide
    labels = np.arange(140) % len(CLASSES)
    pixels = rng.uniform(0, 255, (40, 32, 32, 3)).astype(np.float32)
    save_detector(fit_detector(features, labels, len(CLASSES), features[:40], pixels), folder / OOD_FILENAME)
    write_card(folder, {**tiny_card(version), "ood": {"file": OOD_FILENAME, "threshold": 1.0}})


def test_a_refreshed_card_is_picked_up_by_a_warm_worker(celery_worker, owner_api, tiny_model_root, settings):
    settings.MODEL_ROOT = tiny_model_root
    folder = save_tiny_version(tiny_model_root, "tiny-refit")
    try:
        register_model_versions(tiny_model_root)
        ModelVersion.objects.get(name="tiny-refit").activate()
        before = upload_and_wait(owner_api, seed=1)  # the worker is warm with this card now
        assert before["status"] == "done", celery_worker.log()
        assert before["ood_score"] is None  # no out-of-distribution check yet

        add_ood_check(folder, "tiny-refit")
        register_model_versions(tiny_model_root)  # refreshes the registered card in place
        after = upload_and_wait(owner_api, seed=2)

        assert after["status"] == "done", celery_worker.log()
        assert after["model_version"] == "tiny-refit"
        assert after["ood_score"] is not None, "the warm worker kept the card it loaded first"
        assert "Active card changed" in celery_worker.log()
    finally:
        shutil.rmtree(folder)
