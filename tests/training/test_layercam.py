"""training.layercam: Layer-CAM from a hand-written backward pass, checked against tf.GradientTape."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.images import dermoscopy_like_png
from tests.tiny_model import TINY_INPUT_SIZE, TINY_LAYER_CAM_LAYER, tiny_mobilenet
from training.layercam import (
    GRAD_CAM,
    LAYER_CAM,
    check_against_tape,
    layer_cam_model,
    map_disagreement,
    served_map,
    tape_layer_cam,
)
from training.preprocessing import to_model_input

SHIPPED_V3 = Path(__file__).resolve().parents[2] / "models" / "mobilenetv2-150-v3"


def lesion_pixels(count: int, size: tuple[int, int]) -> np.ndarray:
    pictures = [Image.open(io.BytesIO(dermoscopy_like_png(seed=seed))) for seed in range(count)]
    return np.stack([to_model_input(picture, size) for picture in pictures])


@pytest.fixture(scope="module")
def pixels():
    # Drawn lesions and plain noise: pictures the tiny network puts in several top classes.
    noise = np.random.default_rng(3).uniform(0, 255, (6, *TINY_INPUT_SIZE, 3)).astype(np.float32)
    return np.concatenate([lesion_pixels(6, TINY_INPUT_SIZE), noise])


@pytest.mark.parametrize("nested", [True, False], ids=["inside-a-nested-base", "top-level"])
def test_the_hand_written_gradient_gives_gradient_tapes_layer_cam_on_a_mobilenet_like_model(nested, pixels):
    model = tiny_mobilenet(seed=1, nested=nested)

    probabilities, features, maps = (np.asarray(out) for out in layer_cam_model(model, TINY_LAYER_CAM_LAYER)(pixels))

    assert len(set(probabilities.argmax(axis=1))) >= 3, "the pictures should not all share one top class"
    assert maps.shape == (len(pixels), 16, 16)
    assert map_disagreement(maps, tape_layer_cam(model, TINY_LAYER_CAM_LAYER)(pixels)) is None
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(probabilities, np.asarray(model(pixels)), atol=1e-6)
    import keras

    expected_features = keras.Model(model.inputs[0], model.get_layer("pool").output)(pixels)
    np.testing.assert_allclose(features, np.asarray(expected_features), rtol=1e-5, atol=1e-5)


def test_the_hand_written_gradient_gives_gradient_tapes_layer_cam_on_the_shipped_model():
    import keras

    model = keras.saving.load_model(SHIPPED_V3 / "model.keras", compile=False)
    explained = layer_cam_model(model)  # block_12_expand_relu
    pixels = lesion_pixels(6, (150, 150))

    maps = np.asarray(explained(pixels)[2])

    assert maps.shape == (6, 10, 10)
    check_against_tape(model, explained, "block_12_expand_relu", pixels)  # raises when the maps disagree


def test_a_gradient_that_is_wrong_fails_the_check_against_the_tape(pixels):
    """The check can fail: Layer-CAM taken at another layer of the same grid is not the one asked for."""
    model = tiny_mobilenet(seed=1)
    wrong = layer_cam_model(model, "block_12_depthwise_relu")  # same 16x16 grid, another layer

    with pytest.raises(RuntimeError, match="differs from GradientTape's"):
        check_against_tape(model, wrong, TINY_LAYER_CAM_LAYER, pixels)


def test_a_layer_whose_gradient_is_not_written_is_refused_by_name():
    import keras

    inputs = keras.Input((32, 32, 3), name="pixels")
    x = keras.layers.ReLU(name="early")(keras.layers.Conv2D(4, 3, padding="same")(inputs))
    x = keras.layers.MaxPooling2D(name="max_pool")(x)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(7, name="logits")(keras.layers.Dropout(0.1, name="head_dropout")(features))
    scaled = keras.layers.Rescaling(1.0, name="temperature_scaling")(logits)
    model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(scaled))

    with pytest.raises(ValueError, match=r"max_pool \(MaxPooling2D\)"):
        layer_cam_model(model, "early")
    with pytest.raises(ValueError, match="no layer 'block_12_expand_relu'"):
        layer_cam_model(model)


def test_the_exported_graph_needs_only_tflites_builtin_ops(pixels):
    from ai_edge_litert.interpreter import Interpreter

    from training.export_litert import convert

    explained = layer_cam_model(tiny_mobilenet(seed=1), TINY_LAYER_CAM_LAYER)

    interpreter = Interpreter(model_content=convert(explained))

    names = {op["op_name"] for op in interpreter._get_ops_details()}
    assert {"DEPTHWISE_CONV_2D", "CONV_2D", "TOPK_V2"} <= names
    assert not [name for name in names if name.startswith("Flex") or name == "CUSTOM"]


def test_a_card_names_the_map_its_version_serves():
    assert served_map({}) == (GRAD_CAM, None)  # a card from before: Grad-CAM, as always
    assert served_map({"explanation": {"method": "grad-cam"}}) == (GRAD_CAM, None)
    layer_cam = {"explanation": {"method": "layer-cam", "layer": "block_12_expand_relu", "figures": {}}}
    assert served_map(layer_cam) == (LAYER_CAM, "block_12_expand_relu")
    with pytest.raises(ValueError, match="names no 'layer'"):
        served_map({"explanation": {"method": "layer-cam"}})
    with pytest.raises(ValueError, match="not 'score-cam'"):
        served_map({"explanation": {"method": "score-cam"}})


def test_two_computations_of_a_map_agree_when_only_a_few_cells_move_a_little():
    want = np.random.default_rng(0).uniform(0, 1, (3, 10, 10))
    a_relu6_at_its_limit = want.copy()
    a_relu6_at_its_limit[1] += 5e-4  # one picture: a unit late in the network moved all its cells a little
    a_relu6_at_its_limit[1, 4:6, 4:6] += 0.04  # and four of them more
    everywhere = want + 2e-4
    one_cell_far_off = want.copy()
    one_cell_far_off[2, 0, 0] += 0.3

    assert map_disagreement(want + 1e-6, want) is None
    assert map_disagreement(a_relu6_at_its_limit, want) is None
    assert "median picture's map differs by 2.00e-04" in map_disagreement(everywhere, want)
    assert "a cell differs by 3.00e-01" in map_disagreement(one_cell_far_off, want)
