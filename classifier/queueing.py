"""Sending work to the workers, by task name: the web side never imports the worker package.

Celery routes each name to its queue (settings.CELERY_TASK_ROUTES). A send that fails
(the broker is down) is logged and leaves its predictions 'queued' for the periodic
sweep (classifier.sweeper) to send again; a training job that could not be sent is
failed at once instead, so that the admin who started it can start it again; a webhook
delivery stays due for the webhooks sweep (classifier.webhook_delivery) to send.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings

logger = logging.getLogger(__name__)

PREDICT_TASK = "worker.tasks.predict"
RETRAIN_TASK = "worker.tasks.retrain"
DELIVER_WEBHOOK_TASK = "worker.tasks.deliver_webhook"


def model_batches(prediction_ids: list[int], size: int) -> list[list[int]]:
    """The fewest batches of at most ``size`` ids, as even as they can be.

    100 ids in batches of 32 go as 25, 25, 25, 25 rather than 32, 32, 32, 4: the
    same number of tasks, but no small tail batch, which costs a task's fixed work
    for few images and runs the model at its least efficient size (docs/PERFORMANCE.md).
    """
    count = -(-len(prediction_ids) // size)  # ceiling division
    batches, start = [], 0
    for index in range(count):
        end = start + len(prediction_ids) // count + (index < len(prediction_ids) % count)
        batches.append(prediction_ids[start:end])
        start = end
    return batches


def enqueue_predictions(prediction_ids: list[int]) -> None:
    """Send the predictions to the inference queue, in model-sized batches."""
    for chunk in model_batches(prediction_ids, settings.INFERENCE_BATCH_SIZE):
        _send(PREDICT_TASK, [chunk], f"predictions {chunk}", {"prediction_ids": chunk})


def enqueue_training_job(job_id: int) -> bool:
    """Send a training job to the training queue; False if the broker could not take it."""
    return _send(RETRAIN_TASK, [job_id], f"training job {job_id}", {"job_id": job_id})


def enqueue_webhook_deliveries(delivery_ids: list[int]) -> None:
    """Send each delivery to the webhooks queue; one the broker cannot take is sent by the periodic sweep."""
    for delivery_id in delivery_ids:
        _send(DELIVER_WEBHOOK_TASK, [delivery_id], f"webhook delivery {delivery_id}", {"delivery_id": delivery_id})


def _send(task: str, args: list, what: str, log_fields: dict) -> bool:
    try:
        current_app.send_task(task, args=args)
    except Exception:
        logger.exception("Could not enqueue %s", what, extra=log_fields)
        return False
    return True
