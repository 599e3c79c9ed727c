"""Starting and cancelling retraining jobs (the work itself runs in worker.retraining)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from classifier.models import ModelVersion, TrainingJob
from classifier.queueing import enqueue_training_job
from classifier.training_data import labelled_counts, require_enough_labelled_images

NOT_SENT = "The training queue could not be reached (is Redis running?); nothing was changed. Start the job again."
NO_ACTIVE_VERSION = "There is no active version to start from; start from ImageNet instead."


class JobConflict(Exception):
    """Another training job is queued or running: only one runs at a time."""

    def __init__(self, open_job: TrainingJob):
        super().__init__(f"Training job {open_job.pk} is {open_job.status}; wait for it or cancel it first.")
        self.open_job = open_job


def start_training_job(user, start_from: str = TrainingJob.StartFrom.ACTIVE, epochs: int = 3) -> TrainingJob:
    """Create a queued job and send it to the `training` queue once committed.

    A job that would fail is refused here, before anything is queued, by the rule the
    job itself applies (NotEnoughData, a ValueError with the counts).
    """
    if not 1 <= epochs <= settings.TRAINING_MAX_EPOCHS:
        raise ValueError(f"epochs must be between 1 and {settings.TRAINING_MAX_EPOCHS}")
    with transaction.atomic():
        open_job = TrainingJob.objects.select_for_update().filter(status__in=TrainingJob.OPEN_STATUSES).first()
        if open_job is not None:
            raise JobConflict(open_job)
        if start_from == TrainingJob.StartFrom.ACTIVE and not ModelVersion.objects.filter(is_active=True).exists():
            raise ValueError(NO_ACTIVE_VERSION)
        require_enough_labelled_images(labelled_counts())
        job = TrainingJob.objects.create(requested_by=user, start_from=start_from, epochs=epochs)
        transaction.on_commit(lambda: _send(job))
    return job


def _send(job: TrainingJob) -> None:
    if not enqueue_training_job(job.pk):
        job.finish(TrainingJob.Status.FAILED, error=NOT_SENT)
