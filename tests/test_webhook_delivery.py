"""Sending a delivery to a real receiver on 127.0.0.1: signed, retried, logged, and given up on."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from classifier.lib.webhook_signature import new_secret, verify
from classifier.models import WebhookDelivery, WebhookEndpoint
from classifier.webhook_delivery import attempt_delivery, due_deliveries
from tests.webhook_receiver import running_receiver


@pytest.fixture(autouse=True)
def receivers_on_this_machine(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_RETRY_DELAYS = [10.0, 60.0]
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_DISABLE_AFTER = 2
    settings.WEBHOOK_TIMEOUT = 2.0


def endpoint_for(owner, url: str) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(user=owner, url=url, secret=new_secret(), events=["prediction.finished"])


def pending(endpoint: WebhookEndpoint, clinic, n: int = 1) -> WebhookDelivery:
    event = {"id": f"00000000-0000-0000-0000-{n:012d}", "type": "prediction.finished", "created": "2026-12-01T16:00:00",
             "data": {"object": "prediction", "id": n}}  # fmt: skip
    return WebhookDelivery.objects.create(
        endpoint=endpoint, clinic=clinic, event_type="prediction.finished", event_id=event["id"], payload=event,
        next_attempt_at=timezone.now(),
    )  # fmt: skip


def make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_it_posts_the_event_signed_with_the_endpoints_secret(owner, clinic):
    with running_receiver([200]) as receiver:
        endpoint = endpoint_for(owner, receiver.url)
        delivery = pending(endpoint, clinic)

        assert attempt_delivery(delivery.pk) is None

    [request] = receiver.received
    assert request.path == "/hooks/lesionsite"
    assert request.event == delivery.payload
    verify(endpoint.secret, request.headers["Lesionsite-Signature"], request.body)
    assert request.headers["Lesionsite-Event"] == "prediction.finished"
    assert request.headers["Lesionsite-Delivery"] == str(delivery.pk)
    assert request.headers["Content-Type"] == "application/json"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


def test_a_failed_attempt_is_tried_again_after_the_first_delay_and_logged(owner, clinic):
    with running_receiver([500, 200]) as receiver:
        delivery = pending(endpoint_for(owner, receiver.url), clinic)

        assert attempt_delivery(delivery.pk) == 10.0
        delivery.refresh_from_db()
        assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
        assert delivery.last_error == "HTTP 500 Internal Server Error"
        assert delivery.next_attempt_at > timezone.now() + datetime.timedelta(seconds=8)
        assert attempt_delivery(delivery.pk) is None  # not due yet: a second task does nothing
        assert len(receiver.received) == 1

        make_due(delivery)
        assert attempt_delivery(delivery.pk) is None

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "delivered", 2, 200, ""
    )  # fmt: skip


def test_a_redirect_is_a_failure_and_is_not_followed(owner, clinic):
    with running_receiver([302]) as receiver:
        delivery = pending(endpoint_for(owner, receiver.url), clinic)
        attempt_delivery(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.last_status_code == 302 and "redirects are not followed" in delivery.last_error
    assert len(receiver.received) == 1


def test_an_endpoint_is_disabled_after_deliveries_fail_every_attempt_repeatedly(owner, clinic):
    with running_receiver([503]) as receiver:
        endpoint = endpoint_for(owner, receiver.url)
        first, second, third = (pending(endpoint, clinic, n) for n in (1, 2, 3))
        for delivery in (first, second):
            for _ in range(3):
                make_due(delivery)
                attempt_delivery(delivery.pk)
        endpoint.refresh_from_db()
        assert not endpoint.is_active and endpoint.consecutive_failures == 2
        assert "Disabled after 2 deliveries in a row failed all of their 3 attempts" in endpoint.disabled_reason
        assert "HTTP 503" in endpoint.disabled_reason

        attempt_delivery(third.pk)  # pending when the endpoint was disabled: never sent

    assert len(receiver.received) == 6
    first.refresh_from_db(), third.refresh_from_db()
    assert (first.state, first.attempts) == ("failed", 3)
    assert (third.state, third.attempts, third.last_error) == ("failed", 0, "Not sent: the endpoint is disabled.")


def test_a_delivery_resets_the_failure_count(owner, clinic):
    with running_receiver([200]) as receiver:
        endpoint = endpoint_for(owner, receiver.url)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=1)
        attempt_delivery(pending(endpoint, clinic).pk)

    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0 and endpoint.is_active


def test_nothing_is_sent_once_the_user_has_left_the_events_clinic(owner, clinic, other_clinic):
    other_clinic.add_member(owner, "manager")  # so that owner may leave clinic A
    with running_receiver([200]) as receiver:
        delivery = pending(endpoint_for(owner, receiver.url), clinic)
        owner.memberships.get(clinic=clinic).remove()

        assert attempt_delivery(delivery.pk) is None

    assert receiver.received == []
    delivery.refresh_from_db()
    assert delivery.state == "failed" and "no longer belongs to the event's clinic" in delivery.last_error


def test_an_event_the_endpoint_no_longer_subscribes_to_is_not_sent(owner, clinic):
    with running_receiver([200]) as receiver:
        endpoint = endpoint_for(owner, receiver.url)
        delivery = pending(endpoint, clinic)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(events=["batch.finished"])

        attempt_delivery(delivery.pk)

    assert receiver.received == []
    delivery.refresh_from_db()
    assert delivery.state == "failed" and "no longer subscribes" in delivery.last_error


def test_the_target_is_checked_again_before_each_delivery(owner, clinic, settings):
    with running_receiver([200]) as receiver:
        delivery = pending(endpoint_for(owner, receiver.url), clinic)
        settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False  # as if its host now resolved into the site's network

        attempt_delivery(delivery.pk)

    assert receiver.received == []
    delivery.refresh_from_db()
    assert delivery.last_status_code is None and delivery.last_error.startswith("Target refused:")


def test_a_receiver_that_is_not_listening_is_a_failed_attempt(owner, clinic):
    with running_receiver([200]) as receiver:
        url = receiver.url  # closed when the block ends: nothing listens there then
    delivery = pending(endpoint_for(owner, url), clinic)

    assert attempt_delivery(delivery.pk) == 10.0
    delivery.refresh_from_db()
    assert delivery.last_status_code is None and "ConnectionRefusedError" in delivery.last_error


def test_the_sweep_finds_the_due_deliveries_only(owner, clinic):
    endpoint = endpoint_for(owner, "https://93.184.215.14/hook")
    due, later, delivered = (pending(endpoint, clinic, n) for n in (1, 2, 3))
    WebhookDelivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    WebhookDelivery.objects.filter(pk=delivered.pk).update(delivered_at=timezone.now(), next_attempt_at=None)

    assert due_deliveries() == [due.pk]
