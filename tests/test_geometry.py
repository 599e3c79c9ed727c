"""A version's input geometry follows its card: old versions keep their centre crop, a new one its own
(the whole picture squashed), in the pixels the worker feeds and in the heatmap's box; served end to end."""

from __future__ import annotations

import shutil

import pytest

from classifier.models import ModelVersion
from classifier.registry import register_model_versions
from tests.conftest import wait_for
from tests.images import upload
from tests.tiny_model import save_tiny_version, tiny_card
from training.card import write_card

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def classified(client, url):
    body = client.get(url).json()
    return body if body["status"] in ("done", "failed") else None


def upload_4_3_and_wait(client, seed: int) -> dict:
    picture = upload(f"lesion{seed}.png", size=(200, 150), seed=seed)  # HAM10000's 4:3
    response = client.post("/api/v1/images/", {"file": [picture]}, format="multipart")
    return wait_for(lambda: classified(client, response.json()["images"][0]["prediction"]["url"]), timeout=90)


def test_each_version_is_served_with_its_own_geometry(celery_worker, owner_api, tiny_model_root, settings):
    settings.MODEL_ROOT = tiny_model_root
    folder = save_tiny_version(tiny_model_root, "tiny-squash")
    write_card(folder, {**tiny_card("tiny-squash"), "input": {"geometry": "squash"}})
    try:
        register_model_versions(tiny_model_root)

        ModelVersion.objects.get(name="tiny-v1").activate()
        cropped = upload_4_3_and_wait(owner_api, seed=1)
        ModelVersion.objects.get(name="tiny-squash").activate()
        squashed = upload_4_3_and_wait(owner_api, seed=2)

        assert (cropped["status"], squashed["status"]) == ("done", "done"), celery_worker.log()
        assert (cropped["model_version"], squashed["model_version"]) == ("tiny-v1", "tiny-squash")
        # The heatmap lies over the part of the picture each version saw.
        assert cropped["explanation"]["box"] == [0.125, 0.0, 0.875, 1.0]
        assert squashed["explanation"]["box"] == [0.0, 0.0, 1.0, 1.0]
    finally:
        shutil.rmtree(folder)


def test_the_worker_feeds_the_pixels_the_geometry_makes(tmp_path):
    import numpy as np
    from PIL import Image

    from training.preprocessing import to_model_input
    from worker.model_cache import load_model

    folder = save_tiny_version(tmp_path, "tiny-squash-inprocess")
    write_card(folder, {**tiny_card("tiny-squash-inprocess"), "input": {"geometry": "squash"}})
    model = load_model("tiny-squash-inprocess", folder)
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8))

    assert model.geometry == "squash"
    squashed = to_model_input(picture, model.input_size, model.geometry)
    assert not np.array_equal(squashed, to_model_input(picture, model.input_size))
