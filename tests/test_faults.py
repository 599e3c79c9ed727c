"""Faults with real processes: Redis unreachable during an upload, a worker killed mid-task."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from classifier.models import LesionImage, Prediction
from classifier.sweeper import requeue_stale_predictions
from tests.conftest import wait_for
from tests.images import image_bytes, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@contextlib.contextmanager
def broker_unreachable():
    """Point this (web) process's Celery app at a port where nothing listens, as if Redis were down."""
    from lesionsite.celery import app

    def reset_connection_pools():
        # Celery caches its producer pool for the broker it first reached: forget it
        # (without closing it: kombu shares it, and the real Redis comes back after).
        app._pool = None
        app.amqp._producer_pool = None

    reachable = app.conf.broker_url
    reset_connection_pools()
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        yield
    finally:
        reset_connection_pools()
        app.conf.broker_url = reachable


def test_an_upload_while_redis_is_down_is_kept_and_sent_by_the_sweep_once_redis_is_back(
    celery_worker, owner_api, active_tiny_model
):
    with broker_unreachable():
        response = owner_api.post("/api/v1/images/", {"file": [upload("kept.png")]}, format="multipart")

    # The upload is not lost: stored whole, its prediction queued for the sweep.
    assert response.status_code == 201
    prediction = Prediction.objects.get()
    assert prediction.status == "queued" and LesionImage.objects.count() == 1
    assert prediction.image.file.storage.exists(prediction.image.file.name)

    assert requeue_stale_predictions(queued_for=0, running_for=3600) == [prediction.pk]
    wait_for(lambda: Prediction.objects.get(pk=prediction.pk).status == "done", timeout=60)


def large_upload(n: int, seed: int):
    # Big images make the task take seconds (decoding and resizing), long enough to kill it.
    return upload(f"big{n}.png", data=image_bytes("PNG", (2400, 1800), seed=seed))


def test_a_worker_child_killed_mid_task_is_replaced_and_the_predictions_complete_exactly_once(
    celery_worker, owner_api, active_tiny_model
):
    files = [large_upload(i, seed=700 + i) for i in range(12)]
    response = owner_api.post("/api/v1/images/", {"file": files}, format="multipart")
    assert response.status_code == 201
    ids = [item["prediction"]["id"] for item in response.json()["images"]]

    wait_for(lambda: running(ids) == len(ids), timeout=60, interval=0.05)
    children = celery_worker.children()
    assert children, "the worker has no pool process"
    for pid in children:
        os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would

    wait_for(lambda: done(ids) == len(ids), timeout=120)
    assert_completed_exactly_once(ids)


def test_a_whole_worker_killed_mid_task_is_redelivered_once_a_worker_is_back(
    celery_worker, owner_api, active_tiny_model
):
    files = [large_upload(i, seed=800 + i) for i in range(12)]
    ids = [i["prediction"]["id"] for i in owner_api.post("/api/v1/images/", {"file": files}).json()["images"]]
    wait_for(lambda: running(ids) == len(ids), timeout=60, interval=0.05)

    celery_worker.kill_hard()
    assert done(ids) == 0
    celery_worker.start()  # Redis hands the unacknowledged task to it after the visibility timeout

    wait_for(lambda: done(ids) == len(ids), timeout=120)
    assert_completed_exactly_once(ids)


def running(ids) -> int:
    return Prediction.objects.filter(pk__in=ids, status="running").count()


def done(ids) -> int:
    return Prediction.objects.filter(pk__in=ids, status="done").count()


def assert_completed_exactly_once(ids) -> None:
    predictions = Prediction.objects.filter(pk__in=ids)
    assert {p.attempts for p in predictions} == {2}  # claimed by the killed run, then by the redelivery
    assert len({p.task_id for p in predictions}) == 1  # the same task, redelivered, finished them
    assert Prediction.objects.count() == len(ids)  # no duplicate rows
    assert all(p.finished_at > p.started_at for p in predictions)


def test_single_uploads_that_shared_a_killed_task_complete_exactly_once(celery_worker, owner_api, active_tiny_model):
    celery_worker.stop()  # the uploads queue up, so the first task takes them all into its batch
    ids = []
    for i in range(6):
        response = owner_api.post("/api/v1/images/", {"file": [large_upload(i, seed=900 + i)]}, format="multipart")
        ids.append(response.json()["images"][0]["prediction"]["id"])
    celery_worker.start()
    wait_for(lambda: running(ids) == len(ids), timeout=60, interval=0.05)
    assert Prediction.objects.filter(pk__in=ids).values("task_id").distinct().count() == 1  # one task holds all six

    for pid in celery_worker.children():
        os.kill(pid, signal.SIGKILL)

    wait_for(lambda: done(ids) == len(ids), timeout=120)
    assert_completed_exactly_once(ids)
