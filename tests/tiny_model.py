"""A small but real Keras model saved as a model version, for tests.

Its predictions are genuine outputs of a (randomly initialised) network: the
platform's tests check the plumbing, not the accuracy. The trained model ships in
models/ and is evaluated by training/.
"""

from __future__ import annotations

from pathlib import Path

from training.card import MODEL_FILENAME, write_card
from training.classes import CLASSES

TINY_INPUT_SIZE = (32, 32)


def tiny_card(version: str, created: str = "2026-01-01T00:00:00Z", threshold: float = 0.5) -> dict:
    return {
        "version": version,
        "created": created,
        "architecture": "tiny test CNN (random weights)",
        "classes": list(CLASSES),
        "input_size": list(TINY_INPUT_SIZE),
        "thresholds": {"malignant": threshold},
        "metrics": {},
        "trained_on": "nothing: a test fixture",
    }


def save_tiny_version(model_root: Path, version: str, seed: int = 0, **card_fields) -> Path:
    """Build, save and describe a tiny CNN under ``model_root/version``."""
    import keras

    keras.utils.set_random_seed(seed)
    height, width = TINY_INPUT_SIZE
    # Layer names as in training.models + training.export, so retraining can split it the same way.
    inputs = keras.Input((height, width, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(len(CLASSES), name="logits")(keras.layers.Dropout(0.2, name="head_dropout")(features))
    scaled = keras.layers.Rescaling(1.0, name="temperature_scaling")(logits)
    model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(scaled))
    folder = model_root / version
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILENAME)
    write_card(folder, tiny_card(version, **card_fields))
    return folder


def write_card_only(model_root: Path, version: str, **card_fields) -> Path:
    """A version folder with a card and a placeholder model file (for registry tests that never load it)."""
    folder = model_root / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILENAME).write_bytes(b"not loaded by this test")
    write_card(folder, tiny_card(version, **card_fields))
    return folder


TINY_LAYER_CAM_LAYER = "block_12_expand_relu"  # named as in MobileNetV2, so a card can serve Layer-CAM there


def tiny_mobilenet(seed: int = 0, nested: bool = True):
    """A small network with MobileNetV2's parts, random weights and random batch-norm statistics.

    Inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project, BN, ReLU6), one
    downsampling with ZeroPadding2D + a stride-2 VALID depthwise convolution (as MobileNetV2
    at 150 px), one with a stride-2 SAME depthwise convolution, a residual Add that joins
    a branch from before ``TINY_LAYER_CAM_LAYER`` (16x16) and one whose two branches both
    come after it, a 3x3 convolution with a fused ReLU; then the platform's head. With
    ``nested`` the body is a nested model, as MobileNetV2's base is in the shipped versions.
    """
    import keras
    import numpy as np
    from keras import layers

    keras.utils.set_random_seed(seed)
    height, width = TINY_INPUT_SIZE

    def bn_relu6(x, name):
        x = layers.BatchNormalization(name=f"{name}_BN")(x)
        return layers.ReLU(6.0, name=f"{name}_relu")(x)

    def block(x, name, expand, out, stride=1, pad_then_valid=False):
        y = bn_relu6(layers.Conv2D(expand, 1, use_bias=False, name=f"{name}_expand")(x), f"{name}_expand")
        if pad_then_valid:
            y = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(y)
        padding = "valid" if pad_then_valid else "same"
        y = layers.DepthwiseConv2D(3, strides=stride, padding=padding, use_bias=False, name=f"{name}_depthwise")(y)
        y = bn_relu6(y, f"{name}_depthwise")
        y = layers.Conv2D(out, 1, use_bias=False, name=f"{name}_project")(y)
        y = layers.BatchNormalization(name=f"{name}_project_BN")(y)
        if stride == 1 and x.shape[-1] == out:
            y = layers.Add(name=f"{name}_add")([x, y])
        return y

    pixels = keras.Input((height, width, 3), name="pixels")
    body_input = keras.Input((height, width, 3)) if nested else None
    x = body_input if nested else layers.Rescaling(1 / 127.5, offset=-1, name="to_minus1_1")(pixels)
    x = bn_relu6(layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="Conv1")(x), "Conv1")
    x = block(x, "block_11", 24, 8)
    x = block(x, "block_12", 24, 8)  # its expand ReLU is TINY_LAYER_CAM_LAYER; its Add joins block_11's output
    x = block(x, "block_13", 24, 16, stride=2, pad_then_valid=True)  # 16 -> 8
    x = block(x, "block_14", 32, 16, stride=2)  # 8 -> 4, SAME
    x = block(x, "block_15", 32, 16)  # both branches of its Add come after the layer
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="fused_relu_conv")(x)
    x = bn_relu6(layers.Conv2D(32, 1, use_bias=False, name="Conv_1")(x), "out")
    if nested:
        base = keras.Model(body_input, x, name="tiny_mobilenet_base")
        x = base(layers.Rescaling(1 / 127.5, offset=-1, name="to_minus1_1")(pixels))
    features = layers.GlobalAveragePooling2D(name="pool")(x)
    logits = layers.Dense(len(CLASSES), name="logits")(layers.Dropout(0.2, name="head_dropout")(features))
    scaled = layers.Rescaling(1.0, name="temperature_scaling")(logits)
    model = keras.Model(pixels, layers.Softmax(name="probabilities")(scaled))

    # Batch norm as after training (not the identity it starts as), strong enough that
    # some ReLU6 saturate: every factor of the gradient then matters.
    rng = np.random.default_rng(seed)
    every = [sub for layer in model.layers for sub in getattr(layer, "layers", [layer])]
    for layer in every:
        if isinstance(layer, layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 3.0, channels) * rng.choice([-1, 1], channels),  # gamma
                    rng.normal(0.5, 1.0, channels),  # beta
                    rng.normal(0.0, 0.3, channels),  # moving mean
                    rng.uniform(0.2, 2.0, channels),  # moving variance
                ]
            )
    # Logits of the features' deviation from their mean on noise, so the top class (whose
    # gradient is taken) changes from picture to picture.
    logits_layer = model.get_layer("logits")
    kernel = rng.normal(0.0, 1.0, logits_layer.kernel.shape)
    features = keras.Model(model.inputs[0], model.get_layer("pool").output)
    mean = np.asarray(features(rng.uniform(0, 255, (16, height, width, 3)).astype("float32"))).mean(axis=0)
    logits_layer.set_weights([kernel * 10, -(kernel * 10).T @ mean])
    return model


def save_tiny_mobilenet_version(model_root: Path, version: str, seed: int = 0, **card_fields) -> Path:
    """``tiny_mobilenet`` saved as a version whose card serves Layer-CAM at ``TINY_LAYER_CAM_LAYER``."""
    folder = model_root / version
    folder.mkdir(parents=True, exist_ok=True)
    tiny_mobilenet(seed).save(folder / MODEL_FILENAME)
    card = tiny_card(version, **card_fields)
    card["architecture"] = "tiny MobileNetV2-like network (random weights)"
    card["explanation"] = {"method": "layer-cam", "layer": TINY_LAYER_CAM_LAYER}
    write_card(folder, card)
    return folder


TINY_LESION_LAYER = "block_13_expand_relu"  # 16x16, as block_13's expand is 10x10 at 150 px in MobileNetV2


def add_tiny_lesion_mask(folder: Path, seed: int = 0) -> Path:
    """Give a tiny MobileNet-like version a lesion mask head (random weights, not fitted) and its card entry."""
    import json

    import keras

    from training.card import CARD_FILENAME, write_card
    from training.lesion_mask import MASK_FILENAME, activations_model, build_head, mask_model

    keras.utils.set_random_seed(seed)
    served = keras.saving.load_model(folder / MODEL_FILENAME, compile=False)
    features = activations_model(served, TINY_LESION_LAYER)
    head = build_head(tuple(features.output_shape[1:]))
    mask_model(features, head).save(folder / MASK_FILENAME)
    card = json.loads((folder / CARD_FILENAME).read_text(encoding="utf-8"))
    card["lesion_mask"] = {"file": MASK_FILENAME, "layer": TINY_LESION_LAYER, "grid": [16, 16]}
    write_card(folder, card)
    return folder
