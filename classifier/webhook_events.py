"""Making webhook events when predictions finish: a delivery for each endpoint that is told of them.

An event carries ids, the status and the API's URL of what finished, never the reading
(class, probabilities, flag): it goes to a URL a user typed in, and whoever can read
that URL's logs should learn nothing about a patient. The client reads the reading
with its own token from the URL, where the API's access rules and audit log apply.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from classifier.clinics import Membership
from classifier.models import BatchEntry, Prediction, UploadBatch
from classifier.queueing import enqueue_webhook_deliveries
from classifier.webhooks import Event, WebhookDelivery, WebhookEndpoint, predictions_finished

FINISHED = (Prediction.Status.DONE, Prediction.Status.FAILED)
OPEN = (Prediction.Status.QUEUED, Prediction.Status.RUNNING)


@dataclass(frozen=True)
class NewEvent:
    type: str
    clinic_id: int
    payload: dict


@receiver(predictions_finished)
def announce_finished(sender, prediction_ids: list[int], **kwargs) -> list[WebhookDelivery]:
    """Events for these finished predictions, and for each batch whose last prediction they were.

    Runs in the worker after every stored chunk, so without endpoints or batches it costs two
    small queries and takes no write lock.
    """
    entries = list(BatchEntry.objects.filter(prediction_id__in=prediction_ids).values_list("prediction_id", "batch_id"))
    # A prediction is in a later batch too when that batch sent the same picture again while it ran;
    # its event names the batch it was made for, the first.
    batches: dict[int, int] = {}
    for prediction_id, batch_id in sorted(entries, reverse=True):
        batches[prediction_id] = batch_id
    listening = WebhookEndpoint.objects.filter(is_active=True).exists()
    if not entries and not listening:
        return []
    with transaction.atomic():  # a batch is marked finished only with its event's deliveries
        finished = finish_batches({batch_id for _, batch_id in entries})
        if not listening:
            return []
        rows = Prediction.objects.filter(pk__in=prediction_ids, status__in=FINISHED).values(
            "id", "status", "image_id", "image__clinic_id"
        )
        events = [prediction_event(row, batches.get(row["id"])) for row in rows]
        return create_deliveries(events + [batch_event(batch) for batch in finished])


def finish_batches(batch_ids: set[int]) -> list[UploadBatch]:
    """The batches among these whose every prediction has finished and that nobody marked finished yet.

    Each is marked with a conditional UPDATE, so when two workers finish a batch's last two
    predictions at once and both see it finished, one of them marks it and sends its event.
    """
    if not batch_ids:
        return []
    still_open = set(
        BatchEntry.objects.filter(batch_id__in=batch_ids, prediction__status__in=OPEN).values_list(
            "batch_id", flat=True
        )
    )
    now = timezone.now()
    mine = [
        pk
        for pk in sorted(batch_ids - still_open)
        if UploadBatch.objects.filter(pk=pk, finished_at=None).update(finished_at=now)
    ]
    return list(UploadBatch.objects.filter(pk__in=mine))


def prediction_event(row: dict, batch_id: int | None) -> NewEvent:
    data = {
        "object": "prediction",
        "id": row["id"],
        "url": _absolute("api:prediction-detail", row["id"]),
        "status": row["status"],
        "image_id": row["image_id"],
        "batch_id": batch_id,
        "clinic_id": row["image__clinic_id"],
    }
    return NewEvent(Event.PREDICTION_FINISHED, row["image__clinic_id"], _envelope(Event.PREDICTION_FINISHED, data))


def batch_event(batch: UploadBatch) -> NewEvent:
    statuses = list(batch.entries.values_list("prediction_id", "prediction__status").order_by("position"))
    data = {
        "object": "batch",
        "id": batch.pk,
        "url": _absolute("api:batch-detail", batch.pk),
        "clinic_id": batch.clinic_id,
        "counts": {status.value: sum(1 for _, s in statuses if s == status) for status in FINISHED},
        "predictions": [
            {"id": pk, "url": _absolute("api:prediction-detail", pk), "status": status} for pk, status in statuses
        ],
    }
    return NewEvent(Event.BATCH_FINISHED, batch.clinic_id, _envelope(Event.BATCH_FINISHED, data))


def create_deliveries(events: list[NewEvent]) -> list[WebhookDelivery]:
    """A pending delivery of each event to each active endpoint subscribed to it whose user belongs to
    the event's clinic; sent to the webhooks queue once committed."""
    clinic_ids = {event.clinic_id for event in events}
    if not clinic_ids:
        return []
    endpoints = list(
        WebhookEndpoint.objects.filter(is_active=True, user__memberships__clinic_id__in=clinic_ids).distinct()
    )
    if not endpoints:
        return []
    members = set(
        Membership.objects.filter(clinic_id__in=clinic_ids, user_id__in={e.user_id for e in endpoints}).values_list(
            "user_id", "clinic_id"
        )
    )
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint,
                clinic_id=event.clinic_id,
                event_type=event.type,
                event_id=event.payload["id"],
                payload=event.payload,
                next_attempt_at=now,
                created_at=now,
            )
            for event in events
            for endpoint in endpoints
            if endpoint.receives(event.type, event.clinic_id) and (endpoint.user_id, event.clinic_id) in members
        ]
    )
    ids = [delivery.pk for delivery in deliveries]
    if ids:
        transaction.on_commit(lambda: enqueue_webhook_deliveries(ids))
    return deliveries


def _envelope(event_type: str, data: dict) -> dict:
    return {"id": str(uuid.uuid4()), "type": str(event_type), "created": timezone.now().isoformat(), "data": data}


def _absolute(route: str, pk: int) -> str | None:
    """The API URL of the thing, at SITE_URL; None where the API has no such resource."""
    try:
        return settings.SITE_URL + reverse(route, args=[pk])
    except NoReverseMatch:
        return None
