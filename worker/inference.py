"""Running claimed predictions through the active model: plain functions, no Celery."""

from __future__ import annotations

import logging
import time

import numpy as np
from django.conf import settings
from django.db import transaction

from classifier.models import ModelVersion, Prediction
from classifier.object_storage import READ_UNAVAILABLE, STORAGE_ERRORS
from training.card import card_digest
from training.lesion_mask import outline
from training.ood import FLAGGED_ABOVE
from training.preprocessing import input_box, to_model_input
from worker.model_cache import LoadedModel, ModelLoadError, ModelOutputs, get_model
from worker.model_fetch import ModelFetchError, local_folder

logger = logging.getLogger(__name__)

NO_ACTIVE_MODEL = "No active model version: an administrator must train or activate one, then re-run this prediction."


def run_predictions(prediction_ids: list[int], task_id: str, fill_batch: bool = False) -> list[int]:
    """Claim, infer and store these predictions; return the ids this call finished.

    Safe to call twice with the same ids (a redelivered task): rows already
    finished, or held by another task, are left alone. ``fill_batch``: also take
    other queued predictions, up to one model batch (settings.INFERENCE_COALESCE).
    """
    room = max(0, settings.INFERENCE_BATCH_SIZE - len(prediction_ids)) if fill_batch else 0
    predictions = Prediction.claim(prediction_ids, task_id, also_queued=room)
    held = [prediction.pk for prediction in predictions]
    if not held:
        logger.info(
            "predictions %s: nothing to claim (already handled)",
            prediction_ids,
            extra={"prediction_ids": prediction_ids, "task_id": task_id},
        )
        return []
    taken = sorted(set(held) - set(prediction_ids))
    logger.info(
        "predictions %s: claimed%s",
        held,
        f" ({len(taken)} other queued ones to fill the batch)" if taken else "",
        extra={"prediction_ids": held, "task_id": task_id},
    )

    version = ModelVersion.active()
    if version is None:
        return _fail_all(predictions, NO_ACTIVE_MODEL)
    try:
        model = get_model(
            version.name,
            local_folder(version),
            settings.INFERENCE_THREADS,
            backend=settings.INFERENCE_BACKEND,
            card_digest=card_digest(version.card),
        )
    except ModelFetchError as exc:
        # Never served from a download that failed its check; the sweep sends these again.
        logger.error("predictions %s: %s", held, exc, extra={"prediction_ids": held, "task_id": task_id})
        return _return_all(predictions, str(exc))
    except ModelLoadError as exc:
        logger.error("predictions %s: %s", held, exc, extra={"prediction_ids": held, "task_id": task_id})
        return _fail_all(predictions, str(exc))

    readable, pixels, sizes = [], [], []
    for prediction in predictions:
        try:
            pixels.append(_read_pixels(prediction, model))
            sizes.append((prediction.image.width, prediction.image.height))
            readable.append(prediction)
        except STORAGE_ERRORS as exc:
            logger.error(
                "prediction %s: file store unavailable: %s", prediction.pk, exc, extra={"prediction_id": prediction.pk}
            )
            prediction.return_to_queue(READ_UNAVAILABLE)
        except OSError as exc:
            logger.error(
                "prediction %s: stored image unreadable: %s", prediction.pk, exc, extra={"prediction_id": prediction.pk}
            )
            prediction.mark_failed("The stored image could not be read, so it was not classified.")

    finished = []
    batch_size = settings.INFERENCE_BATCH_SIZE
    for start in range(0, len(readable), batch_size):
        chunk = readable[start : start + batch_size]
        began = time.perf_counter()
        chunk_pixels = np.stack(pixels[start : start + batch_size])
        outputs = model.analyse(chunk_pixels)
        per_image_ms = (time.perf_counter() - began) * 1000 / len(chunk)
        readings = describe(model, outputs, chunk_pixels, sizes[start : start + batch_size])
        results = []
        for prediction, row, reading in zip(chunk, outputs.probabilities, readings, strict=True):
            by_class = {code: float(p) for code, p in zip(model.card.classes, row, strict=True)}
            score = model.card.malignancy.of_one(by_class)  # what the card's threshold was chosen on
            fields = Prediction.done_fields(version, by_class, score, per_image_ms, **reading)
            results.append((prediction, fields))
        # One commit for the chunk, not one per row: a PostgreSQL commit waits for
        # its WAL flush (2-9 ms measured), so 32 commits cost as much as a LiteRT
        # call on 32 images (docs/PERFORMANCE.md); and one pipelined round trip for
        # its UPDATEs. A failure rolls the chunk back to "running" for this task,
        # which the task's error handling then fails.
        with transaction.atomic():
            stored = Prediction.finish_many(task_id, results)
        for prediction in stored:  # logged once committed, so a line never claims a rolled-back result
            finished.append(prediction.pk)
            # Ids and timings only: what the model found is patient data, kept in the database, never in logs.
            logger.info(
                "prediction %s: done (image %s, version %s, %.1f ms)",
                prediction.pk,
                prediction.image_id,
                version.name,
                per_image_ms,
                extra={"prediction_id": prediction.pk, "image_id": prediction.image_id, "task_id": task_id,
                       "model_version": version.name, "duration_ms": round(per_image_ms, 1)},
            )  # fmt: skip
    return finished


def describe(model: LoadedModel, outputs: ModelOutputs, pixels: np.ndarray, sizes: list[tuple]) -> list[dict]:
    """Per image (of these (width, height)): is it uncertain, how unlike the training images is it,
    where did the model look, and where is the lesion when the version can outline it."""
    uncertain_below = settings.UNCERTAIN_BELOW
    scores = model.ood_scores(outputs, pixels)
    readings = []
    for i, row in enumerate(outputs.probabilities):
        top = int(np.argmax(row))
        reading = {"is_uncertain": bool(row[top] < uncertain_below)}
        if scores is not None:
            reading["ood_score"] = round(float(scores[i]), 3)
            reading["is_out_of_distribution"] = bool(scores[i] > FLAGGED_ABOVE)
        if outputs.heatmaps is not None:
            # Grad-CAM needs no layer: it is always the last feature maps.
            layer = {"layer": model.heatmap_layer} if model.heatmap_layer else {}
            reading["explanation"] = {
                "method": model.heatmap_method,
                **layer,
                "class": model.card.classes[top],
                # Rows top to bottom over the model's input, which is this box of the picture.
                "grid": np.round(outputs.heatmaps[i], 3).tolist(),
                "box": [round(edge, 4) for edge in input_box(sizes[i], model.input_size, model.geometry)],
            }
        if outputs.lesion_grids is not None:
            reading["lesion_outline"] = outline(outputs.lesion_grids[i], sizes[i], model.card)
        readings.append(reading)
    return readings


def fail_predictions(task_id: str, message: str) -> None:
    """Record a failure on every row this task holds (a timeout, an unexpected error),
    including queued rows it took to fill its batch."""
    for prediction in Prediction.objects.filter(status=Prediction.Status.RUNNING, task_id=task_id):
        prediction.mark_failed(message)


def _read_pixels(prediction: Prediction, model: LoadedModel) -> np.ndarray:
    return to_model_input(prediction.image.open_pixels(), model.input_size, model.geometry)


def _return_all(predictions: list[Prediction], message: str) -> list[int]:
    for prediction in predictions:
        prediction.return_to_queue(message)
        logger.warning("prediction %s: back in the queue: %s", prediction.pk, message,
                       extra={"prediction_id": prediction.pk})  # fmt: skip
    return []


def _fail_all(predictions: list[Prediction], message: str) -> list[int]:
    for prediction in predictions:
        prediction.mark_failed(message)
        logger.warning("prediction %s: failed: %s", prediction.pk, message, extra={"prediction_id": prediction.pk})
    return []
