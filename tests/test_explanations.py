"""Heatmaps (Grad-CAM, or Layer-CAM where the card says so), the out-of-distribution flag and the
uncertainty notice, from model to page."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from classifier.models import ModelVersion, Prediction
from classifier.registry import register_model_versions
from tests.factories import make_image, make_prediction
from tests.images import image_bytes
from tests.tiny_model import TINY_INPUT_SIZE, TINY_LAYER_CAM_LAYER, save_tiny_mobilenet_version, save_tiny_version
from training.card import MODEL_FILENAME, read_card, write_card
from training.classes import CLASSES
from training.fit_ood import features_and_probabilities, fit_ood_entries, write_ood
from training.layercam import map_disagreement
from training.preprocessing import to_model_input
from worker.inference import run_predictions
from worker.model_cache import ModelLoadError, load_model


def noise_pixels(count: int, seed: int) -> np.ndarray:
    pictures = [Image.open(io.BytesIO(image_bytes(seed=seed + i))) for i in range(count)]
    return np.stack([to_model_input(picture, TINY_INPUT_SIZE) for picture in pictures])


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("explained-models")


@pytest.fixture(scope="module")
def ood_version(tiny_root):
    """A tiny version whose out-of-distribution check was fitted on noise pictures like the tests upload."""
    import keras

    folder = save_tiny_version(tiny_root, "tiny-ood", seed=5)
    model = keras.saving.load_model(folder / MODEL_FILENAME, compile=False)
    train_features, _ = features_and_probabilities(model, noise_pixels(140, seed=1000))
    val_pixels = noise_pixels(100, seed=5000)
    val_features, val_probabilities = features_and_probabilities(model, val_pixels)
    labels = np.arange(140) % len(CLASSES)  # the classes are arbitrary here: all pictures are alike
    detector, ood, uncertainty = fit_ood_entries(
        (train_features, labels), (val_features, val_probabilities, np.arange(100) % len(CLASSES), val_pixels)
    )
    write_ood(folder, detector, ood, uncertainty)
    return folder


def test_the_heatmap_is_grad_cam_of_the_top_class(tiny_root):
    """Independent check: with pooling -> dense, Grad-CAM is relu(sum_k w[k, top] * A_k), normalised."""
    import keras

    folder = save_tiny_version(tiny_root, "tiny-cam", seed=2)
    loaded = load_model("tiny-cam", folder)
    pixels = noise_pixels(4, seed=7)

    outputs = loaded.analyse(pixels)

    model = keras.saving.load_model(folder / MODEL_FILENAME, compile=False)
    maps = keras.Model(model.inputs, model.get_layer("pool").input)(pixels).numpy()
    weights = model.get_layer("logits").get_weights()[0]
    np.testing.assert_allclose(outputs.probabilities, model(pixels).numpy(), atol=1e-6)
    for i, top in enumerate(outputs.probabilities.argmax(axis=1)):
        expected = np.maximum(maps[i] @ weights[:, top], 0)
        expected = expected / expected.max() if expected.max() > 0 else expected
        np.testing.assert_allclose(outputs.heatmaps[i], expected, atol=1e-4)
    np.testing.assert_allclose(outputs.features, maps.mean(axis=(1, 2)), atol=1e-5)


def test_the_heatmap_is_layer_cam_at_the_cards_layer_when_the_card_says_so(tiny_root):
    """Independent check: Layer-CAM from tf.GradientTape (training.explanations), not the served graph."""
    import keras

    from training.explanations import layer_cams

    folder = save_tiny_mobilenet_version(tiny_root, "tiny-layer-cam", seed=4)
    loaded = load_model("tiny-layer-cam", folder)
    pixels = noise_pixels(6, seed=11)

    outputs = loaded.analyse(pixels)

    model = keras.saving.load_model(folder / MODEL_FILENAME, compile=False)
    expected = layer_cams(model, TINY_LAYER_CAM_LAYER, ("layercam",))(pixels)["layercam"]
    assert (loaded.heatmap_method, loaded.heatmap_layer) == ("layer-cam", TINY_LAYER_CAM_LAYER)
    assert outputs.heatmaps.shape == (6, 16, 16)  # the layer's grid, finer than the last maps' 4x4
    assert map_disagreement(outputs.heatmaps, expected) is None  # within 1e-4 but where a ReLU6 sits at 0 or 6
    np.testing.assert_allclose(outputs.probabilities, model(pixels).numpy(), atol=1e-5)
    pooled = keras.Model(model.inputs[0], model.get_layer("pool").output)(pixels).numpy()
    np.testing.assert_allclose(outputs.features, pooled, rtol=1e-5, atol=1e-5)


def test_a_card_that_serves_layer_cam_at_a_layer_the_model_lacks_is_refused_at_load(tiny_root):
    folder = save_tiny_version(tiny_root, "tiny-no-such-layer", seed=2)
    card = read_card(folder).raw
    write_card(folder, {**card, "explanation": {"method": "layer-cam", "layer": "block_12_expand_relu"}})

    with pytest.raises(ModelLoadError, match="serves Layer-CAM at 'block_12_expand_relu', but the model has no layer"):
        load_model("tiny-no-such-layer", folder)


def test_a_model_without_a_pooling_head_is_served_without_heatmaps(tiny_root):
    import keras

    folder = tiny_root / "tiny-flat"
    folder.mkdir()
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(len(CLASSES), activation="softmax")]
    )
    model.save(folder / MODEL_FILENAME)
    write_card(
        folder,
        {"version": "tiny-flat", "classes": list(CLASSES), "input_size": [32, 32], "thresholds": {"malignant": 0.5}},
    )

    outputs = load_model("tiny-flat", folder).analyse(noise_pixels(2, seed=1))

    assert outputs.probabilities.shape == (2, len(CLASSES))
    assert outputs.heatmaps is None and outputs.features is None


@pytest.mark.django_db
def test_the_worker_stores_the_heatmap_over_the_cropped_box_and_the_uncertainty(owner, active_tiny_model, settings):
    settings.UNCERTAIN_BELOW = 1.01  # every reading is "uncertain"
    prediction = make_prediction(owner)  # a 64x48 picture: the square input keeps its middle 48x48

    run_predictions([prediction.pk], task_id="explain")

    prediction.refresh_from_db()
    assert prediction.status == "done" and prediction.is_uncertain is True
    explanation = prediction.explanation
    assert explanation["method"] == "grad-cam" and explanation["class"] == prediction.top_class
    assert "layer" not in explanation  # a card without an explanation entry: Grad-CAM as before
    grid = np.array(explanation["grid"])
    assert grid.ndim == 2 and grid.min() >= 0 and grid.max() <= 1
    assert explanation["box"] == [0.125, 0.0, 0.875, 1.0]
    # The tiny version has no out-of-distribution check: no score, no flag.
    assert prediction.ood_score is None and prediction.is_out_of_distribution is None

    settings.UNCERTAIN_BELOW = 0.0
    second = make_prediction(owner)
    run_predictions([second.pk], task_id="explain-2")
    assert Prediction.objects.get(pk=second.pk).is_uncertain is False


@pytest.mark.django_db
def test_the_worker_stores_a_layer_cam_grid_of_the_layers_shape_with_its_method_and_layer(owner, tiny_root, settings):
    folder = save_tiny_mobilenet_version(tiny_root / "served", "tiny-served-layer-cam", seed=4)
    settings.MODEL_ROOT = folder.parent
    _activate(folder)
    prediction = make_prediction(owner)  # 64x48: the square input keeps its middle 48x48

    run_predictions([prediction.pk], task_id="layer-cam")

    prediction.refresh_from_db()
    explanation = prediction.explanation
    assert prediction.status == "done"
    assert (explanation["method"], explanation["layer"]) == ("layer-cam", TINY_LAYER_CAM_LAYER)
    assert explanation["class"] == prediction.top_class
    grid = np.array(explanation["grid"])
    assert grid.shape == (16, 16) and grid.min() >= 0 and grid.max() == 1.0
    assert explanation["box"] == [0.125, 0.0, 0.875, 1.0]


def _activate(folder) -> ModelVersion:
    register_model_versions(folder.parent)
    version = ModelVersion.objects.get(name=folder.name)
    version.activate()
    return version


def _blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (250, 250, 250)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.django_db
def test_a_blank_picture_is_flagged_out_of_distribution_and_pictures_like_the_training_ones_are_not(
    owner, ood_version, settings
):
    from django.core.files.base import ContentFile

    settings.MODEL_ROOT = ood_version.parent
    _activate(ood_version)
    # Noise pictures like the fitting ones, with seeds of their own: the detector, fitted on 240
    # of them, flags 3-5 % of fresh ones, so the factories' running seeds (which depend on the
    # tests run before) would make "at most one of ten" fail about one run in twenty.
    familiar = []
    for seed in range(7000, 7010):
        image = make_image(owner)
        image.file.save(f"familiar-{seed}.png", ContentFile(image_bytes(seed=seed)))
        familiar.append(Prediction.objects.create(image=image))
    blank_image = make_image(owner)
    blank_image.file.save("blank.png", ContentFile(_blank_png()))
    blank = Prediction.objects.create(image=blank_image)

    run_predictions([p.pk for p in familiar] + [blank.pk], task_id="ood")

    blank.refresh_from_db()
    assert blank.is_out_of_distribution is True
    assert blank.ood_score > ModelVersion.objects.get(name="tiny-ood").card["ood"]["threshold"] == 1.0
    flagged = Prediction.objects.filter(pk__in=[p.pk for p in familiar], is_out_of_distribution=True).count()
    assert flagged <= 1, "the detector flags the pictures it was fitted on"


@pytest.mark.django_db
def test_the_result_page_warns_instead_of_labelling_an_out_of_distribution_image(owner_web, owner, active_tiny_model):
    flagged = make_prediction(
        owner, status="done", top_class="mel", model_version=active_tiny_model,
        is_out_of_distribution=True, ood_score=93.5, is_uncertain=False,
    )  # fmt: skip
    uncertain = make_prediction(
        owner, status="done", top_class="nv", model_version=active_tiny_model,
        is_out_of_distribution=False, ood_score=3.0, is_uncertain=True,
    )  # fmt: skip

    page = owner_web.get(reverse("classifier:prediction", args=[flagged.pk])).content.decode()
    warning = page.split('data-show-if="out_of_distribution"')[1].split("</div>")[0]
    verdict = page.split('data-show-if="in_distribution"')[1].split(">")[0]
    assert "hidden" not in warning.split(">")[0] and "does not look like a dermatoscopic image" in warning
    assert "hidden" in verdict

    page = owner_web.get(reverse("classifier:prediction", args=[uncertain.pk])).content.decode()
    notice = page.split('data-show-if="uncertain"')[1].split(">")[0]
    assert "hidden" not in notice
    assert "hidden" in page.split('data-show-if="out_of_distribution"')[1].split(">")[0]


@pytest.mark.django_db
def test_the_api_reports_confidence_and_the_explanation(owner_api, owner, active_tiny_model):
    prediction = make_prediction(
        owner, status="done", model_version=active_tiny_model, is_uncertain=True, ood_score=2.5,
        is_out_of_distribution=False,
        explanation={"method": "grad-cam", "class": "nv", "grid": [[0.0, 1.0]], "box": [0, 0, 1, 1]},
    )  # fmt: skip

    body = owner_api.get(reverse("api:prediction-detail", args=[prediction.pk])).json()

    assert body["is_uncertain"] is True and body["is_out_of_distribution"] is False and body["ood_score"] == 2.5
    assert body["ood_threshold"] is None  # the tiny version has no detector
    assert body["explanation"]["grid"] == [[0.0, 1.0]]


SERVED_FIGURES = {
    "method": "layer-cam",
    "layer": "block_12_expand_relu",
    "grid": [10, 10],
    "figures": {
        "pointing_game": 0.961,
        "heat_in_lesion": 0.572,
        "lesion_area": 0.347,
        "centre_baseline": 0.964,
        "faithfulness": {"map_drop": 0.22, "random_drop": 0.03, "map_beats_random": 0.758},
        "measured_on": "validation",
        "n": 1505,
    },
}


@pytest.mark.django_db
def test_the_result_page_says_what_the_served_maps_validation_figures_are(owner_web, owner, active_tiny_model):
    active_tiny_model.card = {**active_tiny_model.card, "explanation": SERVED_FIGURES}
    active_tiny_model.save()
    prediction = make_prediction(
        owner, status="done", top_class="nv", model_version=active_tiny_model, is_out_of_distribution=False,
        explanation={"method": "layer-cam", "layer": "block_12_expand_relu", "class": "nv", "grid": [[1.0]],
                     "box": [0, 0, 1, 1]},
    )  # fmt: skip

    page = owner_web.get(reverse("classifier:prediction", args=[prediction.pk])).content.decode()

    assert "Layer-CAM heatmap available." in page
    figures = page.split('data-field="heatmap_figures"')[1].split("</p>")[0]
    assert 'data-method="layer-cam"' in figures and 'data-layer="block_12_expand_relu"' in figures
    text = " ".join(figures.split(">", 1)[1].split())
    assert "on 1505 validation images of HAM10000 (not from your clinic)" in text
    assert "hottest point fell inside the lesion for 96 % of pictures" in text
    assert "the centre of the picture lies inside the lesion for 96 % of them" in text
    assert "57 % of its heat lay inside the lesion, which covers 35 % of the area the model saw" in text
    assert "more than blurring a random 10 % for 76 % of pictures" in text


@pytest.mark.django_db
def test_a_version_whose_card_has_no_figures_shows_none(owner_web, owner, active_tiny_model):
    prediction = make_prediction(
        owner, status="done", top_class="nv", model_version=active_tiny_model, is_out_of_distribution=False,
        explanation={"method": "grad-cam", "class": "nv", "grid": [[1.0]], "box": [0, 0, 1, 1]},
    )  # fmt: skip

    page = owner_web.get(reverse("classifier:prediction", args=[prediction.pk])).content.decode()

    assert "Grad-CAM heatmap available." in page
    assert 'data-field="heatmap_figures"' not in page
