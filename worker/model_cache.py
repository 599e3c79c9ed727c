"""The model each worker process holds in memory, loaded lazily on first use.

Two backends serve the same version (settings.INFERENCE_BACKEND): "keras" runs
``model.keras`` as a compiled TensorFlow call; "litert" runs the ``model.tflite``
exported beside it (training.export_litert) with LiteRT, and never imports
TensorFlow in this process: ~4x less memory per worker and a faster call on CPU.
Both give, in the same call, the heatmap the version's card names
(training.layercam.served_map): Grad-CAM on the last feature maps by default, or
Layer-CAM at an earlier layer, which both backends run as one forward-only graph.

Why lazily: a TensorFlow op in the Celery parent before it forks deadlocks the
children, and loading in ``worker_process_init`` (3-4 s) races Celery's 4 s
start-up limit for replacement processes. So the first task of each process
loads the model, and later tasks reuse it until the active version changes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.card import INFERENCE_BACKENDS, LITERT_FILENAME, MODEL_FILENAME, ModelCard, read_card
from training.gradcam import grad_cam_function, split_at_pooling
from training.layercam import GRAD_CAM, LAYER_CAM, served_map
from training.ood import OodDetector, load_detector

logger = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The active model version cannot be loaded; the message says why, for a clinician's screen."""


@dataclass
class ModelOutputs:
    """What one call gives for N images; features and heatmaps where the backend provides them."""

    probabilities: np.ndarray  # (N, classes), calibrated
    features: np.ndarray | None = None  # (N, d) pooled features, for the out-of-distribution score
    heatmaps: np.ndarray | None = None  # (N, h, w) the card's map (Grad-CAM or Layer-CAM) of the top class, 0..1
    lesion_grids: np.ndarray | None = None  # (N, h', w') lesion probability per cell, for a card with a lesion mask


@dataclass
class LoadedModel:
    version: str
    card: ModelCard
    _call: Callable[[np.ndarray], ModelOutputs]
    load_seconds: float
    backend: str = "keras"
    ood: OodDetector | None = None
    card_digest: str = ""  # of the registered card this was loaded for (get_model)
    # What the heatmaps are (training.layercam.served_map): the card's choice.
    heatmap_method: str = GRAD_CAM
    heatmap_layer: str | None = None

    @property
    def input_size(self) -> tuple[int, int]:
        return self.card.input_size

    @property
    def geometry(self) -> str:
        return self.card.geometry

    def analyse(self, pixels: np.ndarray) -> ModelOutputs:
        """Probabilities, features and heatmaps for float32 RGB pixels (N, H, W, 3) in 0..255."""
        return self._call(pixels)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for float32 RGB pixels (N, H, W, 3) in 0..255."""
        return self._call(pixels).probabilities

    def ood_scores(self, outputs: ModelOutputs, pixels: np.ndarray) -> np.ndarray | None:
        """Out-of-distribution scores (N,), above 1 is out; None when this version or backend has no detector."""
        if self.ood is None or outputs.features is None:
            return None
        return self.ood.score(outputs.features, pixels)


_lock = threading.Lock()
_loaded: LoadedModel | None = None


def get_model(
    version_name: str, version_dir: Path, threads: int = 0, backend: str = "keras", card_digest: str = ""
) -> LoadedModel:
    """The loaded model for this version and backend, loading it (once per process) if needed.

    ``card_digest`` (training.card.card_digest of the registered card): a known version whose
    card was refreshed in place (register_models after training.fit_ood added its
    out-of-distribution check, say) is loaded again, detector included.
    """
    global _loaded
    with _lock:
        wanted = (version_name, backend, card_digest)
        if _loaded is None or (_loaded.version, _loaded.backend, _loaded.card_digest) != wanted:
            if _loaded is not None:
                changed = "card" if _loaded.version == version_name else "model"
                logger.info("Active %s changed (%s to %s); reloading", changed, _loaded.version, version_name)
            _loaded = None  # drop the old model before loading the new one: half the peak memory
            _loaded = load_model(version_name, version_dir, threads, backend)
            _loaded.card_digest = card_digest
        return _loaded


def load_model(version_name: str, version_dir: Path, threads: int = 0, backend: str = "keras") -> LoadedModel:
    started = time.perf_counter()
    try:
        card = read_card(version_dir)
        heatmap = served_map(card.raw)
    except ValueError as exc:
        raise ModelLoadError(f"Model version {version_name} has no usable card: {exc}") from exc
    if backend == "keras":
        call = _load_keras(version_name, Path(version_dir), card, threads, heatmap)
    elif backend == "litert":
        call = _load_litert(version_name, Path(version_dir), card, threads, heatmap)
    else:
        raise ModelLoadError(f"Unknown inference backend {backend!r}; expected one of {', '.join(INFERENCE_BACKENDS)}.")

    ood = _load_ood(version_name, Path(version_dir), card)
    height, width = card.input_size
    outputs = call(np.zeros((1, height, width, 3), np.float32))  # trace / allocate now, not on a first image
    if ood is not None and outputs.features is not None and outputs.features.shape[1] != ood.feature_dim:
        raise ModelLoadError(
            f"Model version {version_name}'s out-of-distribution detector expects {ood.feature_dim} features, "
            f"but the model gives {outputs.features.shape[1]}."
        )
    seconds = time.perf_counter() - started
    logger.info("Loaded model version %s (%s) in %.1f s", version_name, backend, seconds)
    return LoadedModel(
        version=version_name,
        card=card,
        _call=call,
        load_seconds=seconds,
        backend=backend,
        ood=ood,
        heatmap_method=heatmap[0],
        heatmap_layer=heatmap[1],
    )


def _load_ood(version_name: str, version_dir: Path, card: ModelCard) -> OodDetector | None:
    """The version's out-of-distribution detector, if its card has one (training.fit_ood writes both)."""
    described = card.raw.get("ood")
    if not described:
        return None
    path = version_dir / described.get("file", "")
    try:
        return load_detector(path)
    except (OSError, KeyError, ValueError) as exc:
        # The card promises the check; serving without it would give confident labels to non-lesions.
        raise ModelLoadError(
            f"Model version {version_name}'s out-of-distribution detector {path} is unreadable: {exc}"
        ) from exc


def _load_keras(version_name: str, version_dir: Path, card: ModelCard, threads: int, heatmap: tuple[str, str | None]):
    model_path = version_dir / MODEL_FILENAME
    if not model_path.is_file():
        raise ModelLoadError(f"Model version {version_name} has no model file at {model_path}.")

    tf = _import_tensorflow(threads)
    import keras

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as exc:
        raise ModelLoadError(f"Model version {version_name} could not be loaded: {exc}") from exc

    height, width = card.input_size
    expected_outputs = len(card.classes)
    if tuple(model.output_shape[1:]) != (expected_outputs,):
        raise ModelLoadError(
            f"Model version {version_name} outputs shape {model.output_shape}, "
            f"but its card lists {expected_outputs} classes."
        )

    # One traced graph for every batch size: a compiled call costs ~1/10 of
    # model.predict() per image on these machines.
    spec = [tf.TensorSpec([None, height, width, 3], tf.float32)]
    method, layer = heatmap
    if method == LAYER_CAM:
        return _layer_cam_call(version_name, model, layer, spec, _lesion_head(version_name, version_dir, card))
    if card.raw.get("lesion_mask"):
        raise ModelLoadError(f"Model version {version_name}'s card has a lesion mask, served only beside Layer-CAM.")
    if split_at_pooling(model) is None:
        logger.warning("Model version %s has no 'pool' -> 'logits' head: no heatmaps or features", version_name)

        @tf.function(input_signature=spec, reduce_retracing=True)
        def serve(pixels):
            return model(pixels, training=False)

        def call(pixels: np.ndarray) -> ModelOutputs:
            return ModelOutputs(serve(tf.convert_to_tensor(pixels, dtype=tf.float32)).numpy())

        return call

    grad_cam = grad_cam_function(model)

    def call(pixels: np.ndarray) -> ModelOutputs:
        probabilities, features, heatmaps = grad_cam(tf.convert_to_tensor(pixels, dtype=tf.float32))
        return ModelOutputs(probabilities.numpy(), features.numpy(), heatmaps.numpy())

    return call


def _lesion_head(version_name: str, version_dir: Path, card: ModelCard) -> tuple:
    """(head, layer) of the version's lesion mask, () when its card has none."""
    from training.lesion_mask import served_head

    try:
        return served_head(version_dir, card) or ()
    except ValueError as exc:
        raise ModelLoadError(f"Model version {version_name}: {exc}.") from exc


def _layer_cam_call(version_name: str, model, layer: str, spec, lesion_head: tuple = ()):
    """The compiled call for a version whose card serves Layer-CAM: training.layercam's model,
    the same graph its LiteRT export runs, so both backends give the same map (and the
    lesion mask, when the card has one, from the same forward pass)."""
    import tensorflow as tf

    from training.layercam import layer_cam_model

    try:
        explained = layer_cam_model(model, layer, *lesion_head)
    except ValueError as exc:
        raise ModelLoadError(f"Model version {version_name}'s card serves Layer-CAM at {layer!r}, but {exc}.") from exc

    @tf.function(input_signature=spec, reduce_retracing=True)
    def serve_layer_cam(pixels):
        return explained(pixels, training=False)

    def call(pixels: np.ndarray) -> ModelOutputs:
        probabilities, features, heatmaps, *lesion = serve_layer_cam(tf.convert_to_tensor(pixels, dtype=tf.float32))
        grids = lesion[0].numpy()[..., 0] if lesion else None
        return ModelOutputs(probabilities.numpy(), features.numpy(), heatmaps.numpy(), grids)

    return call


def _load_litert(version_name: str, version_dir: Path, card: ModelCard, threads: int, heatmap: tuple[str, str | None]):
    model_path = version_dir / LITERT_FILENAME
    if not model_path.is_file():
        raise ModelLoadError(
            f"Model version {version_name} has no LiteRT export at {model_path}: run "
            f"`python -m training.export_litert {version_dir}`, or set INFERENCE_BACKEND=keras."
        )
    from ai_edge_litert.interpreter import Interpreter  # no TensorFlow import behind it

    try:
        # 0 means every core, as INFERENCE_THREADS does for TensorFlow.
        interpreter = Interpreter(model_path=str(model_path), num_threads=threads or os.cpu_count() or 1)
    except Exception as exc:
        raise ModelLoadError(f"Model version {version_name} could not be loaded by LiteRT: {exc}") from exc
    (input_detail,) = interpreter.get_input_details()
    height, width = card.input_size
    expected_outputs = len(card.classes)
    if tuple(input_detail["shape_signature"][1:]) != (height, width, 3):
        raise ModelLoadError(
            f"Model version {version_name}'s LiteRT export takes shape {input_detail['shape_signature']}, "
            f"but its card says {height}x{width}."
        )
    outputs = _litert_outputs(interpreter.get_output_details(), expected_outputs)
    if "probabilities" not in outputs:
        shapes = [list(detail["shape_signature"]) for detail in interpreter.get_output_details()]
        raise ModelLoadError(
            f"Model version {version_name}'s LiteRT export outputs shapes {shapes}, "
            f"but its card lists {expected_outputs} classes."
        )
    _check_litert_heatmap(version_name, version_dir, outputs, heatmap)
    if bool(card.raw.get("lesion_mask")) != ("lesion_grids" in outputs):
        raise ModelLoadError(
            f"Model version {version_name}'s LiteRT export and card disagree on the lesion mask: "
            f"re-export it with `python -m training.export_litert {version_dir}`."
        )
    input_index = input_detail["index"]
    # An interpreter holds one set of buffers: one call at a time, and re-allocate
    # only when the batch size changes (batches of 32 then a tail, mostly).
    call_lock = threading.Lock()
    allocated = {"batch": None}

    def call(pixels: np.ndarray) -> ModelOutputs:
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        with call_lock:
            if allocated["batch"] != len(pixels):
                interpreter.resize_tensor_input(input_index, pixels.shape, strict=True)
                interpreter.allocate_tensors()
                allocated["batch"] = len(pixels)
            interpreter.set_tensor(input_index, pixels)
            interpreter.invoke()
            # get_tensor returns a copy, safe to keep after the next call.
            got = {name: interpreter.get_tensor(index) for name, index in outputs.items()}
        probabilities = got["probabilities"]
        heatmaps = got.get("layer_cam_maps")  # computed in the graph, scaled to peak 1 (training.layercam)
        if "class_maps" in got:
            # Grad-CAM of the top class: see training.export_litert.explained_model.
            top = probabilities.argmax(axis=1)
            maps = np.maximum(got["class_maps"][np.arange(len(top)), :, :, top], 0.0)
            peak = maps.max(axis=(1, 2), keepdims=True)
            heatmaps = np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)
        grids = got["lesion_grids"][..., 0] if "lesion_grids" in got else None
        return ModelOutputs(probabilities, got.get("features"), heatmaps, grids)

    return call


def _check_litert_heatmap(version_name: str, version_dir: Path, outputs: dict, heatmap: tuple[str, str | None]) -> None:
    """The export must compute the map the card names: its export follows the card (training.export_litert)."""
    method, layer = heatmap
    if method == LAYER_CAM and "layer_cam_maps" not in outputs:
        wrong = "Grad-CAM class maps" if "class_maps" in outputs else "no heatmap"
    elif method == GRAD_CAM and "layer_cam_maps" in outputs:
        wrong = "Layer-CAM maps"
    else:
        return
    wanted = f"Layer-CAM at {layer!r}" if method == LAYER_CAM else "Grad-CAM"
    raise ModelLoadError(
        f"Model version {version_name}'s card serves {wanted}, but its LiteRT export gives {wrong}: "
        f"run `python -m training.export_litert {version_dir}` again, or set INFERENCE_BACKEND=keras."
    )


def _litert_outputs(details: list[dict], classes: int) -> dict[str, int]:
    """Tensor index of each output an export has, told apart by shape (TFLite may reorder them)."""
    found = {}
    for detail in details:
        shape = tuple(detail["shape_signature"][1:])
        if shape == (classes,):
            found["probabilities"] = detail["index"]
        elif len(shape) == 1:
            found["features"] = detail["index"]
        elif len(shape) == 2:
            found["layer_cam_maps"] = detail["index"]
        elif len(shape) == 3 and shape[-1] == classes:
            found["class_maps"] = detail["index"]
        elif len(shape) == 3 and shape[-1] == 1:
            found["lesion_grids"] = detail["index"]
    return found


def _import_tensorflow(threads: int):
    import tensorflow as tf

    if threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised in this process: the first setting stands
    return tf
