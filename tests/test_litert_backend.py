"""The LiteRT backend: the .tflite export serves the same predictions as the Keras model."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from classifier.models import ModelVersion
from tests.conftest import REPO_ROOT
from tests.factories import make_prediction
from tests.images import image_bytes
from tests.tiny_model import (
    TINY_INPUT_SIZE,
    TINY_LAYER_CAM_LAYER,
    add_tiny_lesion_mask,
    save_tiny_mobilenet_version,
    save_tiny_version,
)
from training.card import read_card, write_card
from training.export_litert import export_version
from training.layercam import map_disagreement
from training.preprocessing import to_model_input
from worker.inference import run_predictions
from worker.model_cache import ModelLoadError, load_model


@pytest.fixture(scope="module")
def exported_root(tmp_path_factory):
    """A tiny version (its own name, so the per-process cache never mixes it up) with its .tflite."""
    root = tmp_path_factory.mktemp("litert-models")
    export_version(save_tiny_version(root, "tiny-litert", seed=3))
    export_version(save_tiny_mobilenet_version(root, "tiny-litert-layer-cam", seed=3))  # its card serves Layer-CAM
    export_version(add_tiny_lesion_mask(save_tiny_mobilenet_version(root, "tiny-litert-lesion", seed=4)))
    return root


def generated_pixels(count: int) -> np.ndarray:
    """Model input made the way the worker makes it: decoded JPEGs, cropped and resized."""
    images = []
    for seed in range(count):
        with Image.open(io.BytesIO(image_bytes("JPEG", size=(200, 150), seed=seed))) as image:
            image.load()
            images.append(to_model_input(image, TINY_INPUT_SIZE))
    return np.stack(images)


def test_both_backends_give_the_same_probabilities_for_the_same_images(exported_root):
    pixels = generated_pixels(9)
    keras_model = load_model("tiny-litert", exported_root / "tiny-litert", backend="keras")
    litert_model = load_model("tiny-litert", exported_root / "tiny-litert", threads=1, backend="litert")

    expected = keras_model.predict(pixels)
    for batch in (pixels, pixels[:1], pixels[:4]):  # the interpreter is resized between batch sizes
        got = litert_model.predict(batch)
        assert got.shape == (len(batch), 7)
        np.testing.assert_allclose(got, expected[: len(batch)], atol=1e-4)
        assert (got.argmax(axis=1) == expected[: len(batch)].argmax(axis=1)).all()


def test_both_backends_give_the_same_heatmaps_and_features(exported_root):
    pixels = generated_pixels(6)
    keras_outputs = load_model("tiny-litert", exported_root / "tiny-litert", backend="keras").analyse(pixels)
    litert_outputs = load_model("tiny-litert", exported_root / "tiny-litert", threads=1, backend="litert").analyse(
        pixels
    )

    assert litert_outputs.features is not None and litert_outputs.heatmaps is not None
    np.testing.assert_allclose(litert_outputs.features, keras_outputs.features, rtol=1e-4, atol=1e-4)
    # Keras takes the gradient; LiteRT the class maps (training.export_litert): the same Grad-CAM.
    np.testing.assert_allclose(litert_outputs.heatmaps, keras_outputs.heatmaps, atol=1e-3)
    assert litert_outputs.heatmaps.max() == pytest.approx(1.0)


def test_both_backends_give_the_same_layer_cam_heatmaps_where_the_card_serves_it(exported_root):
    folder = exported_root / "tiny-litert-layer-cam"
    pixels = generated_pixels(8)
    keras_outputs = load_model("tiny-litert-layer-cam", folder, backend="keras").analyse(pixels)
    litert = load_model("tiny-litert-layer-cam", folder, threads=1, backend="litert")

    for batch in (pixels, pixels[:1]):
        got = litert.analyse(batch)
        assert (litert.heatmap_method, litert.heatmap_layer) == ("layer-cam", TINY_LAYER_CAM_LAYER)
        assert got.heatmaps.shape == (len(batch), 16, 16)
        assert map_disagreement(got.heatmaps, keras_outputs.heatmaps[: len(batch)]) is None
        np.testing.assert_allclose(got.probabilities, keras_outputs.probabilities[: len(batch)], atol=1e-5)
        np.testing.assert_allclose(got.features, keras_outputs.features[: len(batch)], rtol=1e-4, atol=1e-4)


def test_both_backends_locate_the_lesion_in_the_same_forward_pass_as_the_mask_model_alone(exported_root):
    import keras

    from training.lesion_mask import MASK_FILENAME

    folder = exported_root / "tiny-litert-lesion"
    pixels = generated_pixels(6)
    alone = keras.saving.load_model(folder / MASK_FILENAME, compile=False).predict(pixels, verbose=0)
    for backend in ("keras", "litert"):
        got = load_model("tiny-litert-lesion", folder, threads=1, backend=backend).analyse(pixels)
        assert got.lesion_grids.shape == (6, 16, 16)
        np.testing.assert_allclose(got.lesion_grids, alone, atol=1e-5)
    plain = load_model("tiny-litert-layer-cam", exported_root / "tiny-litert-layer-cam", backend="keras")
    assert plain.analyse(pixels).lesion_grids is None


@pytest.mark.parametrize("backend", ["keras", "litert"])
def test_the_worker_stores_where_the_lesion_is(owner, exported_root, settings, backend):
    from classifier.registry import register_model_versions

    settings.MODEL_ROOT = exported_root
    settings.INFERENCE_BACKEND = backend
    register_model_versions(exported_root)
    ModelVersion.objects.get(name="tiny-litert-lesion").activate()
    prediction = make_prediction(owner)

    assert run_predictions([prediction.pk], task_id=f"lesion-{backend}") == [prediction.pk]

    prediction.refresh_from_db()
    outline = prediction.lesion_outline
    assert np.array(outline["grid"]).shape == (16, 16)
    assert outline["area"] == pytest.approx(np.mean(outline["grid"]), abs=1e-3)
    left, top, right, bottom = outline["box"]
    assert 0 <= left < right <= 1 and 0 <= top < bottom <= 1


def test_a_litert_export_without_the_cards_lesion_mask_is_refused(exported_root, tmp_path):
    import shutil

    folder = tmp_path / "tiny-litert-stale"
    shutil.copytree(exported_root / "tiny-litert-layer-cam", folder)  # exported before the mask was added
    add_tiny_lesion_mask(folder)

    with pytest.raises(ModelLoadError, match="disagree on the lesion mask"):
        load_model("tiny-litert-stale", folder, threads=1, backend="litert")


def test_a_litert_export_made_for_another_map_than_the_cards_is_refused(tmp_path):
    folder = save_tiny_mobilenet_version(tmp_path, "tiny-stale-export", seed=3)
    card = read_card(folder).raw
    write_card(folder, {key: value for key, value in card.items() if key != "explanation"})
    export_version(folder)  # exported for Grad-CAM ...
    write_card(folder, card)  # ... then the card made to serve Layer-CAM

    with pytest.raises(ModelLoadError, match="serves Layer-CAM at 'block_12_expand_relu', but its LiteRT export gives"):
        load_model("tiny-stale-export", folder, threads=1, backend="litert")


def test_a_version_without_a_tflite_export_fails_with_a_clear_message(tmp_path):
    version_dir = save_tiny_version(tmp_path, "keras-only")

    with pytest.raises(ModelLoadError, match="no LiteRT export .*training.export_litert"):
        load_model("keras-only", version_dir, backend="litert")


@pytest.mark.django_db
def test_a_prediction_under_litert_without_an_export_fails_instead_of_crashing(owner, active_tiny_model, settings):
    settings.INFERENCE_BACKEND = "litert"  # the session's tiny model has no model.tflite
    prediction = make_prediction(owner)

    assert run_predictions([prediction.pk], task_id="litert-1") == []

    prediction.refresh_from_db()
    assert prediction.status == "failed"
    assert "no LiteRT export" in prediction.error


@pytest.mark.django_db
def test_the_worker_stores_litert_predictions(owner, exported_root, settings):
    from classifier.registry import register_model_versions

    settings.MODEL_ROOT = exported_root
    settings.INFERENCE_BACKEND = "litert"
    register_model_versions(exported_root)
    version = ModelVersion.objects.get(name="tiny-litert")
    version.activate()
    prediction = make_prediction(owner)

    assert run_predictions([prediction.pk], task_id="litert-2") == [prediction.pk]

    prediction.refresh_from_db()
    assert prediction.status == "done" and prediction.model_version == version
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction.explanation["method"] == "grad-cam"


@pytest.mark.django_db
def test_the_worker_stores_litert_layer_cam_heatmaps(owner, exported_root, settings):
    from classifier.registry import register_model_versions

    settings.MODEL_ROOT = exported_root
    settings.INFERENCE_BACKEND = "litert"
    register_model_versions(exported_root)
    ModelVersion.objects.get(name="tiny-litert-layer-cam").activate()
    prediction = make_prediction(owner)

    assert run_predictions([prediction.pk], task_id="litert-3") == [prediction.pk]

    prediction.refresh_from_db()
    assert (prediction.explanation["method"], prediction.explanation["layer"]) == ("layer-cam", TINY_LAYER_CAM_LAYER)
    assert np.array(prediction.explanation["grid"]).shape == (16, 16)


# In a fresh interpreter: this test process has imported TensorFlow for the Keras tests.
NO_TENSORFLOW_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import django
    django.setup()
    import numpy as np
    import worker.tasks, worker.inference  # noqa: what a worker process imports
    from worker.model_cache import get_model
    model = get_model("tiny-litert", Path(sys.argv[1]), threads=1, backend="litert")
    probabilities = model.predict(np.zeros((2, 32, 32, 3), np.float32))
    layer_cam = get_model("tiny-litert-layer-cam", Path(sys.argv[2]), threads=1, backend="litert")
    heatmaps = layer_cam.analyse(np.full((2, 32, 32, 3), 128, np.float32)).heatmaps
    print(json.dumps({
        "shape": list(probabilities.shape),
        "heatmaps": list(heatmaps.shape),
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")),
    }))
    """
)


def test_a_litert_worker_never_imports_tensorflow(exported_root, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lesionsite.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        "INFERENCE_BACKEND": "litert",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TENSORFLOW_SCRIPT,
            str(exported_root / "tiny-litert"),
            str(exported_root / "tiny-litert-layer-cam"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"shape": [2, 7], "heatmaps": [2, 16, 16], "loaded": []}


def test_an_unknown_backend_is_refused_at_start_up():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lesionsite.settings", "INFERENCE_BACKEND": "onnx"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: INFERENCE_BACKEND='onnx'" in result.stderr
