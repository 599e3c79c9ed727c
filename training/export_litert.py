"""Export a model version to TensorFlow Lite, beside its ``model.keras``.

Workers may serve a version with LiteRT (``INFERENCE_BACKEND=litert``) instead of
Keras: the same graph, float32, without loading TensorFlow into the worker
(~1/4 of the memory and a faster call on CPU). The export takes the same input as
the Keras model, float32 RGB pixels 0..255 of shape (N, H, W, 3), with a dynamic
batch dimension, and is checked against the Keras model before it is kept. Besides
the probabilities it outputs the pooled features and what the heatmap the card names
needs (``explained_model``): the Layer-CAM maps themselves, from training.layercam's
forward-only graph, or Grad-CAM's class maps; so LiteRT workers give the same heatmaps
and out-of-distribution check as Keras ones. Only TFLite's builtin ops are allowed.

    python -m training.export_litert models/<version>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training.card import LITERT_FILENAME, MODEL_FILENAME, read_card
from training.layercam import GRAD_CAM, LAYER_CAM, check_against_tape, layer_cam_model, map_disagreement, served_map
from training.lesion_mask import served_head

# The export is rejected if it differs from the Keras model by more than this on any probability.
MAX_ABS_DIFFERENCE = 1e-4
# Random pictures the checks run; maps are judged by the median picture (training.layercam.map_disagreement).
MAP_PROBES = 8


def explained_model(model, heatmap: tuple[str, str | None] = (GRAD_CAM, None), lesion_head: tuple = ()):
    """The model with two more outputs, for heatmaps and the out-of-distribution check; or None.

    ``heatmap`` is the card's (training.layercam.served_map). For Layer-CAM the outputs
    are probabilities, pooled features and the maps (N, h, w) (training.layercam.layer_cam_model),
    and the lesion grid (N, h', w', 1) when ``lesion_head`` (training.lesion_mask.served_head) is given.
    For Grad-CAM: probabilities (N, classes); pooled features (N, d); class maps (N, h, w,
    classes), the last feature maps through the logits layer's kernel without bias.
    For the platform's head (pooling -> dropout -> dense logits) the gradient of a
    class's logit with respect to the feature maps is that kernel's column divided by
    h*w at every position, so Grad-CAM of class c is relu(class maps[..., c]) up to
    that scale, which its normalisation removes: the LiteRT worker computes the same
    heatmap as the Keras one (worker.model_cache) without gradients.
    """
    import keras

    from training.export import has_served_head

    method, layer = heatmap
    if method == LAYER_CAM:
        return layer_cam_model(model, layer, *lesion_head)
    if not has_served_head(model):
        return None
    pool, logits = model.get_layer("pool"), model.get_layer("logits")
    kernel = logits.get_weights()[0]
    if kernel.shape[0] == kernel.shape[1]:
        return None  # features as wide as the classes: the worker could not tell the outputs apart
    class_maps_layer = keras.layers.Dense(kernel.shape[1], use_bias=False, name="class_maps")
    class_maps = class_maps_layer(pool.input)
    class_maps_layer.set_weights([kernel])
    return keras.Model(model.inputs, [model.output, pool.output, class_maps], name=f"{model.name}_explained")


def convert(model) -> bytes:
    """The model's inference graph as a float32 TFLite flatbuffer with a dynamic batch."""
    import tensorflow as tf

    # from_keras_model exports the model's call with batch None, so the interpreter
    # accepts any batch after resize_tensor_input. (A hand-made tf.function passed to
    # from_concrete_functions with the model as trackable_obj kept Keras 3 variables
    # as uninitialised resources: NaN outputs.)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = []  # float32 as trained: no quantization, so predictions match Keras
    # ai-edge-litert runs builtins only (no flex ops): a graph that needs more fails here, not in a worker.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def check_agreement(model, flatbuffer: bytes, input_size: tuple[int, int], batch: int = 4) -> float:
    """Largest absolute difference between Keras and LiteRT outputs on random pixels (relative for features).

    Layer-CAM maps (N, h, w) are held to training.layercam's agreement of maps instead
    (RuntimeError when they disagree): a ReLU6 at its limits may move a few cells.
    """
    from ai_edge_litert.interpreter import Interpreter

    pixels = np.random.default_rng(0).uniform(0, 255, (batch, *input_size, 3)).astype(np.float32)
    expected = model(pixels, training=False)
    expected = [np.asarray(e) for e in (expected if isinstance(expected, (list, tuple)) else [expected])]
    interpreter = Interpreter(model_content=flatbuffer)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, pixels.shape, strict=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, pixels)
    interpreter.invoke()
    got = [interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()]
    worst = 0.0
    for want in expected:
        # TFLite may list outputs in another order: match each by shape.
        (match,) = [g for g in got if g.shape == want.shape]
        if want.ndim == 3:
            problem = map_disagreement(match, want)
            if problem is not None:
                raise RuntimeError(f"LiteRT export's Layer-CAM maps differ from the Keras model's: {problem}")
            continue
        scale = max(1.0, float(np.max(np.abs(want))))
        worst = max(worst, float(np.max(np.abs(want - match))) / scale)
    return worst


def export_version(version_dir: Path | str) -> Path:
    """Write ``<version_dir>/model.tflite`` from ``<version_dir>/model.keras``; return its path."""
    import keras

    version_dir = Path(version_dir)
    card = read_card(version_dir)
    model = keras.saving.load_model(version_dir / MODEL_FILENAME, compile=False)
    heatmap = served_map(card.raw)
    explained = explained_model(model, heatmap, served_head(version_dir, card) or ()) or model
    if heatmap[0] == LAYER_CAM:
        probe = np.random.default_rng(1).uniform(0, 255, (MAP_PROBES, *card.input_size, 3)).astype(np.float32)
        check_against_tape(model, explained, heatmap[1], probe)  # the hand-written gradient, checked
    flatbuffer = convert(explained)
    difference = check_agreement(explained, flatbuffer, card.input_size, batch=MAP_PROBES)
    if difference > MAX_ABS_DIFFERENCE:
        raise RuntimeError(f"LiteRT export differs from the Keras model by {difference:.2e} (> {MAX_ABS_DIFFERENCE})")
    target = version_dir / LITERT_FILENAME
    partial = target.with_suffix(".tflite.partial")  # a worker never sees a half-written file
    partial.write_bytes(flatbuffer)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a model version to TensorFlow Lite for LiteRT.")
    parser.add_argument("version_dir", help="models/<version>, holding model.keras and card.json")
    args = parser.parse_args(argv)
    target = export_version(args.version_dir)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
