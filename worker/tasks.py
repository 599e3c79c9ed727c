"""Celery tasks: thin wrappers that add retries and bookkeeping to worker.inference."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from classifier.sweeper import sweep_stale_work
from classifier.webhook_delivery import attempt_delivery, due_deliveries
from worker.inference import fail_predictions, run_predictions
from worker.retraining import run_training_job

logger = logging.getLogger(__name__)

# Only errors that can pass by themselves are retried: the database restarting,
# a dropped connection. A bad image or a broken model fails its prediction at once.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(
    bind=True,
    name="worker.tasks.predict",
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=30,
    max_retries=5,
)
def predict(self, prediction_ids: list[int]) -> int:
    """Classify these predictions' images with the active model version."""
    try:
        return len(run_predictions(prediction_ids, task_id=self.request.id, fill_batch=settings.INFERENCE_COALESCE))
    except TRANSIENT_ERRORS:
        raise  # retried with the same task id, which may re-claim its rows
    except SoftTimeLimitExceeded:
        logger.error(
            "predictions %s: soft time limit exceeded", prediction_ids, extra={"prediction_ids": prediction_ids}
        )
        fail_predictions(self.request.id, "Classification took too long and was stopped.")
        return 0
    except Exception as exc:
        logger.exception("predictions %s: failed", prediction_ids, extra={"prediction_ids": prediction_ids})
        fail_predictions(self.request.id, f"Classification failed: {exc.__class__.__name__}: {exc}")
        return 0


@shared_task(
    bind=True,
    name="worker.tasks.retrain",
    acks_late=False,  # a retraining run is not safely repeatable mid-way; a lost job is re-started by hand
    soft_time_limit=settings.TRAINING_TIME_LIMIT,
    time_limit=settings.TRAINING_HARD_TIME_LIMIT,
)
def retrain(self, job_id: int) -> None:
    """Run a training job (on the `training` queue, concurrency 1)."""
    run_training_job(job_id, task_id=self.request.id)


@shared_task(name="worker.tasks.sweep", ignore_result=True)
def sweep() -> None:
    """Periodic (Celery beat): re-send stuck predictions, fail training jobs whose worker died."""
    sweep_stale_work()


# A retry sooner than this is sent with a countdown; a later one is left to send_due_webhooks.
# Redis hands a task held for its countdown to another worker once the broker's visibility
# timeout (300 s) passes, so a two-hour countdown would be sent several times.
COUNTDOWN_AT_MOST = 60


@shared_task(bind=True, name="worker.tasks.deliver_webhook", ignore_result=True)
def deliver_webhook(self, delivery_id: int) -> None:
    """One attempt at a webhook delivery (on the `webhooks` queue); schedules the next if it failed."""
    delay = attempt_delivery(delivery_id)
    if delay is not None and delay <= COUNTDOWN_AT_MOST:
        deliver_webhook.apply_async(args=[delivery_id], countdown=delay)


@shared_task(name="worker.tasks.send_due_webhooks", ignore_result=True)
def send_due_webhooks() -> None:
    """Periodic (Celery beat): send the deliveries whose next attempt is due (long retries, lost tasks)."""
    for delivery_id in due_deliveries():
        deliver_webhook.delay(delivery_id)
