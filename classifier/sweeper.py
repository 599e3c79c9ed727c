"""Re-sending predictions that got stuck: never enqueued (broker down) or orphaned by a dead worker."""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from classifier.idempotency import IdempotencyRecord
from classifier.models import Prediction, TrainingJob
from classifier.queueing import enqueue_predictions

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # an image that killed its worker three times is not retried a fourth
GAVE_UP = "Classification was attempted {n} times without finishing; re-run it once the workers are healthy."


def requeue_stale_predictions(queued_for: float, running_for: float) -> list[int]:
    """Re-enqueue predictions queued longer than ``queued_for`` seconds or running longer than
    ``running_for`` seconds (choose it above the task's hard time limit); return their ids.

    Each is reset with a conditional update, so a worker that finishes meanwhile wins.
    """
    now = timezone.now()
    stale_queued = Prediction.objects.filter(
        status=Prediction.Status.QUEUED, created_at__lt=now - datetime.timedelta(seconds=queued_for)
    )
    stale_running = Prediction.objects.filter(
        status=Prediction.Status.RUNNING, started_at__lt=now - datetime.timedelta(seconds=running_for)
    )
    requeued = []
    with transaction.atomic():
        for prediction in stale_running.filter(attempts__gte=MAX_ATTEMPTS):
            prediction.mark_failed(GAVE_UP.format(n=prediction.attempts))
        running_ids = list(stale_running.values_list("id", flat=True))
        Prediction.objects.filter(id__in=running_ids, status=Prediction.Status.RUNNING).update(
            status=Prediction.Status.QUEUED, task_id="", started_at=None
        )
        requeued = sorted(set(running_ids) | set(stale_queued.values_list("id", flat=True)))
        transaction.on_commit(lambda: enqueue_predictions(requeued))
    if requeued:
        logger.warning(
            "Re-enqueued %d stale predictions: %s", len(requeued), requeued, extra={"prediction_ids": requeued}
        )
    return requeued


def sweep_stale_work() -> tuple[list[int], list[int]]:
    """What Celery beat's sweep does with the settings' delays: (predictions re-sent, jobs failed)."""
    requeued = requeue_stale_predictions(settings.SWEEP_QUEUED_AFTER, settings.SWEEP_RUNNING_AFTER)
    IdempotencyRecord.objects.expired().delete()  # past IDEMPOTENCY_KEY_HOURS they replay nothing
    return requeued, fail_abandoned_training_jobs(settings.TRAINING_ABANDONED_AFTER)


def fail_abandoned_training_jobs(running_for: float) -> list[int]:
    """Training jobs still 'running' past the training time limit lost their worker: mark them failed,
    so a new job can start. (Their partial output is never registered: versions are renamed into
    TRAINED_MODEL_ROOT only when complete.)"""
    cutoff = timezone.now() - datetime.timedelta(seconds=running_for)
    abandoned = list(
        TrainingJob.objects.filter(status=TrainingJob.Status.RUNNING, started_at__lt=cutoff).values_list(
            "id", flat=True
        )
    )
    TrainingJob.objects.filter(id__in=abandoned, status=TrainingJob.Status.RUNNING).update(
        status=TrainingJob.Status.FAILED,
        finished_at=timezone.now(),
        error="The training worker stopped before the job finished; nothing was changed. Start it again.",
    )
    return abandoned
