"""Stuck predictions are sent again; ones that keep failing are given up on with a message."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from classifier.models import Prediction
from classifier.sweeper import MAX_ATTEMPTS, requeue_stale_predictions
from tests.factories import make_prediction

pytestmark = pytest.mark.django_db

LONG_AGO = timezone.now() - datetime.timedelta(hours=1)


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("classifier.sweeper.enqueue_predictions", calls.append)
    return calls


def test_old_queued_and_running_predictions_are_requeued(owner, sent, django_capture_on_commit_callbacks):
    queued = make_prediction(owner, created_at=LONG_AGO)
    running = make_prediction(owner, status="running", started_at=LONG_AGO, task_id="dead", attempts=1)
    fresh = make_prediction(owner)

    with django_capture_on_commit_callbacks(execute=True):
        ids = requeue_stale_predictions(queued_for=60, running_for=300)

    assert ids == sorted([queued.pk, running.pk])
    assert sent == [ids]
    running.refresh_from_db()
    assert (running.status, running.task_id) == ("queued", "")
    assert fresh.pk not in ids


def test_a_prediction_that_exhausted_its_attempts_fails_instead(owner, sent):
    stuck = make_prediction(owner, status="running", started_at=LONG_AGO, task_id="dead", attempts=MAX_ATTEMPTS)

    assert requeue_stale_predictions(queued_for=60, running_for=300) == []

    stuck.refresh_from_db()
    assert stuck.status == Prediction.Status.FAILED
    assert "attempted 3 times" in stuck.error


def test_a_training_job_running_past_the_time_limit_is_marked_failed(admin_user):
    from classifier.models import TrainingJob
    from classifier.sweeper import fail_abandoned_training_jobs

    lost = TrainingJob.objects.create(requested_by=admin_user, status="running", started_at=LONG_AGO)
    live = TrainingJob.objects.create(requested_by=admin_user, status="running", started_at=timezone.now())

    assert fail_abandoned_training_jobs(running_for=600) == [lost.pk]

    lost.refresh_from_db()
    live.refresh_from_db()
    assert lost.status == "failed" and "training worker stopped" in lost.error
    assert live.status == "running"
