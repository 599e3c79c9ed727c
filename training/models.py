"""Model builders. Every model takes raw float32 RGB pixels 0..255 and outputs logits.

Pixel scaling is a layer inside the model (training and serving cannot drift);
softmax and calibration are added at export (``training.export``), so training
works on logits with ``from_logits=True``.
"""

from __future__ import annotations

import keras

from training.classes import CLASSES

MOBILENET_FEATURES = 1280  # channels of MobileNetV2's last feature map (alpha 1.0)


def build_mobilenet_v2(
    input_size: tuple[int, int], weights: str | None, dropout: float = 0.3
) -> tuple[keras.Model, keras.Model, keras.Model]:
    """MobileNetV2 transfer model, its base, and a head-only model sharing the head's layers.

    The head-only model takes the pooled 1280 features, so phase 1 can train it on
    features computed once instead of running the frozen base every epoch; its
    trained weights are, by construction, the full model's head.
    """
    base = keras.applications.MobileNetV2(input_shape=(*input_size, 3), alpha=1.0, include_top=False, weights=weights)
    base.trainable = False
    head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
    head_dense = keras.layers.Dense(len(CLASSES), name="logits")

    inputs = keras.Input(shape=(*input_size, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_minus1_1")(inputs)
    # training=False keeps batch-norm in inference mode even while fine-tuning: the
    # offline weights have batch-norm folded (identity + bias), and small batches
    # would wreck its running statistics anyway.
    x = base(x, training=False)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = head_dense(head_dropout(features))
    model = keras.Model(inputs, logits, name="mobilenetv2_transfer")

    feature_inputs = keras.Input(shape=(MOBILENET_FEATURES,), name="features")
    head = keras.Model(feature_inputs, head_dense(head_dropout(feature_inputs)), name="head")
    return model, base, head


def feature_extractor(model: keras.Model) -> keras.Model:
    """The transfer model up to the pooled features (for phase 1's feature cache)."""
    return keras.Model(model.inputs, model.get_layer("pool").output, name="features")


def unfreeze_top(base: keras.Model, from_layer: str, batch_norm: bool = False) -> int:
    """Make ``from_layer`` and every later layer of the base trainable; return how many.

    Batch-norm stays frozen unless ``batch_norm``: Keras 3 runs a trainable
    BatchNormalization in training mode inside fit() even though the base was called
    with training=False, and with the offline weights' folded batch-norm (statistics
    0 and 1) that erases the features (every image gets the same features and the model
    collapses to a constant). A frozen one always runs in inference mode.
    ``batch_norm=True`` is for a base whose statistics were set first
    (training.experiments.recipe.restandardize_batch_norm).
    """
    names = [layer.name for layer in base.layers]
    if from_layer not in names:
        raise ValueError(f"{from_layer!r} is not a layer of {base.name}")
    start = names.index(from_layer)
    base.trainable = True
    for i, layer in enumerate(base.layers):
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= start and (batch_norm or not is_batch_norm)
    return sum(1 for layer in base.layers[start:] if layer.trainable)


def build_custom_cnn(input_size: tuple[int, int], dropout: float = 0.4) -> keras.Model:
    """The from-scratch baseline: five Conv2D/batch-norm/pooling blocks, dropout, dense.

    One convolution per block keeps an epoch near a minute on two CPU cores, so
    the baseline gets as many epochs as the transfer model in a fraction of the time.
    """
    layers = [
        keras.Input(shape=(*input_size, 3), name="pixels"),
        keras.layers.Rescaling(1.0 / 255.0, name="to_0_1"),
    ]
    for filters in (16, 32, 64, 128, 256):
        # Batch-norm before the ReLU: without it the class-weighted loss kept this net at
        # the constant uniform prediction (loss ln 7) for whole epochs.
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2),
        ]
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(len(CLASSES), name="logits"),
    ]
    return keras.Sequential(layers, name="custom_cnn")
