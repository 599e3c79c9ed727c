"""Sending a webhook delivery: one attempt at a time, signed, to a checked address, logged.

Plain functions that the `webhooks` queue's thin tasks (worker.tasks) call. An attempt
that fails is tried again after the next of WEBHOOK_RETRY_DELAYS, up to
WEBHOOK_MAX_ATTEMPTS attempts; an endpoint whose deliveries fail every attempt
WEBHOOK_DISABLE_AFTER times in a row is disabled, with the reason, until its user
enables it again.
"""

from __future__ import annotations

import datetime
import json
import logging
import time

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from classifier.clinics import Membership
from classifier.lib.webhook_signature import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature_header
from classifier.lib.webhook_targets import Answer, TargetRefused, check_target, post
from classifier.webhooks import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

# A delivery being sent is not due again for this long after its attempt began: a second
# task for it (a sweep, a redelivery) does nothing meanwhile, and one whose worker died
# mid-attempt is sent again by the sweep after it.
LEASE_SECONDS = 60
USER_AGENT = "lesionsite-webhooks/1"


def target_rules() -> dict:
    """check_target's options under the settings, at registration and before each delivery alike."""
    return {"allow_http": settings.DEBUG, "allow_private": settings.DEBUG or settings.WEBHOOK_ALLOW_PRIVATE_TARGETS}


def due_deliveries(limit: int = 500) -> list[int]:
    """Pending deliveries whose next attempt is due (the sweep sends them), oldest first."""
    due = WebhookDelivery.objects.filter(delivered_at=None, next_attempt_at__lte=timezone.now())
    return list(due.order_by("next_attempt_at", "id").values_list("id", flat=True)[:limit])


def attempt_delivery(delivery_id: int) -> float | None:
    """Try to deliver once; the seconds until its next attempt, or None when there is none
    (delivered, given up, or not due: another task holds it or it was finished already)."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.next_attempt_at is None or delivery.delivered_at is not None:
        return None
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        _give_up(delivery, "Not sent: the endpoint is disabled.")
        return None
    if not endpoint.receives(delivery.event_type, delivery.clinic_id):
        _give_up(delivery, "Not sent: the endpoint no longer subscribes to this event, or to its clinic.")
        return None
    if not Membership.objects.filter(user_id=endpoint.user_id, clinic_id=delivery.clinic_id).exists():
        _give_up(delivery, "Not sent: the endpoint's user no longer belongs to the event's clinic.")
        return None
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(pk=delivery.pk, delivered_at=None, next_attempt_at__lte=now).update(
        next_attempt_at=now + datetime.timedelta(seconds=LEASE_SECONDS), attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    delivery.refresh_from_db(fields=["attempts"])
    answer = send(delivery, endpoint)
    return _record(delivery, endpoint, answer)


def send(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> Answer:
    """POST the delivery's event, signed now; refused before any connection if the target is no longer allowed."""
    try:
        target = check_target(endpoint.url, **target_rules())
    except TargetRefused as exc:
        return Answer(None, f"Target refused: {exc}"[:200])
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(endpoint.secret, body, int(time.time())),
        EVENT_HEADER: delivery.event_type,
        DELIVERY_HEADER: str(delivery.pk),
    }
    return post(target, body, headers, settings.WEBHOOK_TIMEOUT)


def _record(delivery: WebhookDelivery, endpoint: WebhookEndpoint, answer: Answer) -> float | None:
    now = timezone.now()
    fields = {"last_status_code": answer.status, "last_error": answer.error}
    log = {"delivery_id": delivery.pk, "endpoint_id": endpoint.pk, "attempt": delivery.attempts}
    if answer.delivered:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(delivered_at=now, next_attempt_at=None, **fields)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
        logger.info("webhook delivery %s: delivered (HTTP %s)", delivery.pk, answer.status, extra=log)
        return None
    if delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
        delays = settings.WEBHOOK_RETRY_DELAYS
        delay = delays[min(delivery.attempts, len(delays)) - 1]
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=now + datetime.timedelta(seconds=delay), **fields
        )
        logger.warning("webhook delivery %s: %s; again in %g s", delivery.pk, answer.error, delay, extra=log)
        return delay
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None, **fields)
    logger.warning("webhook delivery %s: %s; given up", delivery.pk, answer.error, extra=log)
    _count_failed_delivery(endpoint, answer.error)
    return None


def _count_failed_delivery(endpoint: WebhookEndpoint, error: str) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    limit = settings.WEBHOOK_DISABLE_AFTER
    reason = (
        f"Disabled after {limit} deliveries in a row failed all of their {settings.WEBHOOK_MAX_ATTEMPTS} attempts; "
        f"the last error: {error} Fix the receiver, then enable the endpoint again (PATCH is_active=true)."
    )
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True, consecutive_failures__gte=limit).update(
        is_active=False, disabled_reason=reason
    )
    if disabled:
        logger.warning("webhook endpoint %s: disabled", endpoint.pk, extra={"endpoint_id": endpoint.pk})


def _give_up(delivery: WebhookDelivery, reason: str) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk, delivered_at=None).update(next_attempt_at=None, last_error=reason)
