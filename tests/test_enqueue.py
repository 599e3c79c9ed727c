"""Sending work to the workers by task name (classifier.queueing): batches, names and queues."""

from __future__ import annotations

import pytest

from classifier import queueing
from classifier.queueing import PREDICT_TASK, RETRAIN_TASK, enqueue_predictions, enqueue_training_job, model_batches


@pytest.mark.parametrize(
    ("count", "size", "sizes"),
    [
        (0, 32, []),
        (1, 32, [1]),
        (32, 32, [32]),
        (33, 32, [17, 16]),
        (100, 32, [25, 25, 25, 25]),
        (500, 32, [32] * 4 + [31] * 12),
        (7, 3, [3, 2, 2]),
        (5, 1, [1] * 5),
    ],
)
def test_the_fewest_batches_as_even_as_they_can_be(count, size, sizes):
    ids = list(range(1000, 1000 + count))
    batches = model_batches(ids, size)
    assert [len(batch) for batch in batches] == sizes
    assert [pid for batch in batches for pid in batch] == ids  # every id once, in order


class FakeApp:
    def __init__(self, fail: bool = False):
        self.sent, self.fail = [], fail

    def send_task(self, name, args):
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((name, args))


def test_each_batch_goes_to_the_queue_as_one_task(monkeypatch, settings):
    settings.INFERENCE_BATCH_SIZE = 4
    app = FakeApp()
    monkeypatch.setattr(queueing, "current_app", app)

    enqueue_predictions(list(range(10)))

    assert app.sent == [(PREDICT_TASK, [[0, 1, 2, 3]]), (PREDICT_TASK, [[4, 5, 6]]), (PREDICT_TASK, [[7, 8, 9]])]


def test_a_training_job_is_sent_by_name(monkeypatch):
    app = FakeApp()
    monkeypatch.setattr(queueing, "current_app", app)

    enqueue_training_job(7)

    assert app.sent == [(RETRAIN_TASK, [7])]


def test_a_broker_outage_is_logged_and_leaves_the_work_to_the_sweep(monkeypatch, caplog):
    monkeypatch.setattr(queueing, "current_app", FakeApp(fail=True))

    enqueue_predictions([1, 2])
    enqueue_training_job(3)

    assert "Could not enqueue predictions [1, 2]" in caplog.text and "Could not enqueue training job 3" in caplog.text


@pytest.mark.django_db
def test_a_training_job_that_cannot_be_sent_fails_at_once_and_frees_the_queue(
    monkeypatch, settings, django_user_model, django_capture_on_commit_callbacks
):
    from classifier.models import TrainingJob
    from tests.factories import make_labelled_dataset

    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 1
    make_labelled_dataset(admin, train_lesions_per_class=1, images_per_lesion=1)
    monkeypatch.setattr(queueing, "current_app", FakeApp(fail=True))

    with django_capture_on_commit_callbacks(execute=True):
        job = TrainingJob.start(admin, start_from="imagenet", epochs=1)

    job.refresh_from_db()
    assert job.status == TrainingJob.Status.FAILED and "could not be reached" in job.error
    assert not TrainingJob.objects.filter(status__in=TrainingJob.OPEN_STATUSES).exists()


def test_the_names_sent_are_the_worker_tasks_and_route_to_their_queues():
    from lesionsite.celery import app
    from worker import tasks

    assert (tasks.predict.name, tasks.retrain.name) == (PREDICT_TASK, RETRAIN_TASK)
    assert app.amqp.router.route({}, PREDICT_TASK)["queue"].name == "inference"
    assert app.amqp.router.route({}, RETRAIN_TASK)["queue"].name == "training"
