from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.sweeper import fail_abandoned_training_jobs, requeue_stale_predictions


class Command(BaseCommand):
    help = (
        "Re-enqueue predictions stuck in 'queued' or 'running' (broker outage, killed worker), "
        "and fail training jobs whose worker died."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--queued-for",
            type=float,
            default=settings.SWEEP_QUEUED_AFTER,
            help="Seconds queued before re-sending (default: SWEEP_QUEUED_AFTER, as the periodic sweep).",
        )
        parser.add_argument(
            "--running-for",
            type=float,
            default=settings.SWEEP_RUNNING_AFTER,
            help="Seconds running before re-sending (default: the task's hard time limit plus a minute).",
        )

    def handle(self, *args, queued_for: float, running_for: float, **options):
        ids = requeue_stale_predictions(queued_for, running_for)
        self.stdout.write(f"Re-enqueued {len(ids)} predictions.")
        jobs = fail_abandoned_training_jobs(settings.TRAINING_ABANDONED_AFTER)
        if jobs:
            self.stdout.write(f"Marked {len(jobs)} abandoned training jobs as failed: {jobs}")
