"""Events when predictions finish: who is told, of what, once, and only after commit."""

from __future__ import annotations

import pytest
from django.db import transaction

from classifier import queueing
from classifier.lib.webhook_signature import new_secret
from classifier.models import BatchEntry, Prediction, UploadBatch, WebhookDelivery, WebhookEndpoint
from classifier.queueing import DELIVER_WEBHOOK_TASK
from classifier.webhook_events import announce_finished
from tests.factories import make_batch, make_image, make_prediction

BOTH = ["prediction.finished", "batch.finished"]
READING_FIELDS = {"top_class", "probabilities", "malignant_probability", "is_malignant", "top_probability"}


class FakeApp:
    def __init__(self):
        self.sent = []

    def send_task(self, name, args):
        self.sent.append((name, args))


@pytest.fixture
def broker(monkeypatch):
    app = FakeApp()
    monkeypatch.setattr(queueing, "current_app", app)
    return app


def endpoint_of(user, events=BOTH, **fields) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        user=user, url="https://93.184.215.14/hook", secret=new_secret(), events=events, **fields
    )


def running(owner, task_id="task-1", **fields) -> Prediction:
    return make_prediction(owner, status="running", task_id=task_id, **fields)


def finish(task_id: str, *predictions: Prediction) -> list[Prediction]:
    fields = {"status": Prediction.Status.DONE, "top_class": "mel", "is_malignant": True}
    with transaction.atomic():
        return Prediction.finish_many(task_id, [(prediction, dict(fields)) for prediction in predictions])


def test_members_of_the_predictions_clinic_are_told_after_commit_and_nobody_else(
    owner, teammate, outsider, broker, django_capture_on_commit_callbacks, settings
):
    settings.SITE_URL = "https://lesions.example.org"
    mine, colleague, stranger = endpoint_of(owner), endpoint_of(teammate), endpoint_of(outsider)
    prediction = running(owner)

    with django_capture_on_commit_callbacks(execute=True):
        finish("task-1", prediction)

    deliveries = WebhookDelivery.objects.order_by("endpoint_id")
    assert [d.endpoint for d in deliveries] == [mine, colleague]
    assert {d.event_id for d in deliveries} == {deliveries[0].event_id}  # one event, told to each
    event = deliveries[0].payload
    assert event["type"] == "prediction.finished" and event["id"] == str(deliveries[0].event_id)
    assert event["data"] == {
        "object": "prediction",
        "id": prediction.pk,
        "url": f"https://lesions.example.org/api/v1/predictions/{prediction.pk}/",
        "status": "done",
        "image_id": prediction.image_id,
        "batch_id": None,
        "clinic_id": prediction.image.clinic_id,
    }
    assert not READING_FIELDS & set(event["data"])  # the finding stays behind the API
    assert sorted(broker.sent) == sorted((DELIVER_WEBHOOK_TASK, [d.pk]) for d in deliveries)
    assert stranger.deliveries.count() == 0


def test_a_failed_prediction_is_announced_as_failed(owner, broker, django_capture_on_commit_callbacks):
    endpoint_of(owner)
    prediction = running(owner)

    with django_capture_on_commit_callbacks(execute=True):
        assert prediction.mark_failed("The stored image could not be read.")

    assert WebhookDelivery.objects.get().payload["data"]["status"] == "failed"


def test_a_rolled_back_result_is_never_announced(owner, broker, django_capture_on_commit_callbacks):
    endpoint_of(owner)
    prediction = running(owner)

    def finish_then_fail():
        with transaction.atomic():
            Prediction.finish_many("task-1", [(prediction, {"status": Prediction.Status.DONE})])
            raise RuntimeError("the chunk's commit failed")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        finish_then_fail()

    assert not WebhookDelivery.objects.exists() and broker.sent == []


def test_a_clinician_who_left_the_clinic_is_no_longer_told(owner, teammate, broker, django_capture_on_commit_callbacks):
    endpoint_of(teammate)
    teammate.memberships.get().remove()

    with django_capture_on_commit_callbacks(execute=True):
        finish("task-1", running(owner))

    assert not WebhookDelivery.objects.exists()


def test_an_endpoint_for_one_clinic_hears_only_of_that_clinic(
    owner, other_clinic, broker, django_capture_on_commit_callbacks
):
    other_clinic.add_member(owner, "clinician")
    only_b = endpoint_of(owner, clinic=other_clinic)
    here = running(owner)
    there = running(owner, image=make_image(owner, clinic=other_clinic))

    with django_capture_on_commit_callbacks(execute=True):
        finish("task-1", here, there)

    assert [d.payload["data"]["id"] for d in only_b.deliveries.all()] == [there.pk]


def test_unsubscribed_and_disabled_endpoints_are_not_told(owner, teammate, broker, django_capture_on_commit_callbacks):
    endpoint_of(owner, events=["batch.finished"])
    endpoint_of(teammate, is_active=False)

    with django_capture_on_commit_callbacks(execute=True):
        finish("task-1", running(owner))

    assert not WebhookDelivery.objects.exists()


def batch_of_two(owner):
    batch = make_batch(owner)
    first = running(owner, task_id="a", image=make_image(owner, batch=batch))
    second = running(owner, task_id="b", image=make_image(owner, batch=batch))
    return batch, first, second


def test_a_batch_is_announced_when_its_last_prediction_finishes(owner, broker, django_capture_on_commit_callbacks):
    endpoint = endpoint_of(owner)
    batch, first, second = batch_of_two(owner)

    with django_capture_on_commit_callbacks(execute=True):
        finish("a", first)
    assert not endpoint.deliveries.filter(event_type="batch.finished").exists()
    with django_capture_on_commit_callbacks(execute=True):
        finish("b", second)

    data = endpoint.deliveries.get(event_type="batch.finished").payload["data"]
    assert data["id"] == batch.pk and data["counts"] == {"done": 2, "failed": 0}
    assert [row["id"] for row in data["predictions"]] == [first.pk, second.pk]
    told_of_first = endpoint.deliveries.get(event_type="prediction.finished", payload__data__id=first.pk)
    assert told_of_first.payload["data"]["batch_id"] == batch.pk
    assert UploadBatch.objects.get(pk=batch.pk).finished_at is not None


def test_two_workers_finishing_a_batchs_last_two_at_once_announce_it_once(
    owner, broker, django_capture_on_commit_callbacks
):
    endpoint = endpoint_of(owner)
    batch, first, second = batch_of_two(owner)
    with django_capture_on_commit_callbacks(execute=False):  # both commit before either looks
        finish("a", first)
        finish("b", second)

    announce_finished(Prediction, prediction_ids=[first.pk])  # worker a, after its commit
    announce_finished(Prediction, prediction_ids=[second.pk])  # worker b, after its commit

    assert endpoint.deliveries.filter(event_type="batch.finished").count() == 1
    assert endpoint.deliveries.filter(event_type="prediction.finished").count() == 2


def test_a_batch_is_marked_finished_even_when_nobody_listens(owner, broker, django_capture_on_commit_callbacks):
    batch = make_batch(owner)
    prediction = running(owner, image=make_image(owner, batch=batch))

    with django_capture_on_commit_callbacks(execute=True):
        finish("task-1", prediction)

    assert UploadBatch.objects.get(pk=batch.pk).finished_at is not None
    assert not WebhookDelivery.objects.exists() and broker.sent == []


def test_without_endpoints_or_batches_a_finished_chunk_costs_two_small_queries(
    owner, broker, django_assert_num_queries
):
    prediction = running(owner)
    finish("task-1", prediction)

    with django_assert_num_queries(2):
        assert announce_finished(Prediction, prediction_ids=[prediction.pk]) == []


def test_a_later_batch_that_sent_the_same_picture_is_announced_too(owner, broker, django_capture_on_commit_callbacks):
    endpoint = endpoint_of(owner)
    first_batch, later_batch = make_batch(owner), make_batch(owner)
    prediction = running(owner, image=make_image(owner, batch=first_batch))
    BatchEntry.objects.create(batch=later_batch, image=prediction.image, prediction=prediction, position=0,
                              already_uploaded=True)  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        finish("task-1", prediction)

    told = endpoint.deliveries.filter(event_type="batch.finished")
    assert sorted(d.payload["data"]["id"] for d in told) == [first_batch.pk, later_batch.pk]
    about = endpoint.deliveries.get(event_type="prediction.finished").payload["data"]
    assert about["batch_id"] == first_batch.pk
