"""Webhooks through the whole path: an upload, a real inference worker, a real `webhooks` worker,
and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import pytest

from classifier.lib.webhook_signature import verify
from tests.conftest import _worker_process, wait_for
from tests.images import upload
from tests.webhook_receiver import running_receiver

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Short delays and low limits, so that retries and disabling happen within a test.
WEBHOOK_WORKER_ENV = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
    "WEBHOOK_RETRY_DELAYS": "0.5",
    "WEBHOOK_MAX_ATTEMPTS": "2",
    "WEBHOOK_DISABLE_AFTER": "2",
    "WEBHOOK_TIMEOUT": "3",
}


@pytest.fixture(scope="session")
def webhooks_worker(django_db_setup, django_db_blocker, tiny_model_root, workers_trained_model_root, tmp_path_factory):
    """`celery worker -Q webhooks`, as docker-compose's webhooks service runs it."""
    roots = (tiny_model_root, workers_trained_model_root)
    with _worker_process("webhooks", django_db_blocker, roots, tmp_path_factory, WEBHOOK_WORKER_ENV) as worker:
        yield worker


@pytest.fixture
def workers(celery_worker, webhooks_worker, active_tiny_model, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True  # the web process registers the receiver on 127.0.0.1
    return celery_worker, webhooks_worker


def register(api, url: str, events: list[str]) -> dict:
    response = api.post("/api/v1/webhooks/", {"url": url, "events": events}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def logs(workers) -> str:
    return "\n".join(worker.log()[-4000:] for worker in workers)


def test_a_batch_upload_tells_the_receiver_of_each_prediction_and_of_the_batch_signed(workers, owner_api):
    with running_receiver([200]) as receiver:
        endpoint = register(owner_api, receiver.url, ["prediction.finished", "batch.finished"])
        files = [upload(f"hook{i}.png", seed=300 + i) for i in range(2)]
        answer = owner_api.post("/api/v1/images/", {"file": files}, format="multipart").json()
        predictions = {image["prediction"]["id"] for image in answer["images"]}

        wait_for(lambda: len(receiver.events()) >= 3, timeout=90)

    for request in receiver.events():
        verify(endpoint["secret"], request.headers["Lesionsite-Signature"], request.body)
    told = receiver.events("prediction.finished")
    assert {r.event["data"]["id"] for r in told} == predictions, logs(workers)
    assert {r.event["data"]["status"] for r in told} == {"done"}
    [batch] = receiver.events("batch.finished")
    assert batch.event["data"]["id"] == answer["batch"] and batch.event["data"]["counts"] == {"done": 2, "failed": 0}
    assert len(receiver.received) == 3  # and nothing twice


def test_a_receiver_that_fails_once_gets_the_event_on_the_second_attempt(workers, owner_api):
    with running_receiver([500, 200]) as receiver:
        endpoint = register(owner_api, receiver.url, ["prediction.finished"])
        owner_api.post("/api/v1/images/", {"file": [upload("retry.png", seed=310)]}, format="multipart")
        log_url = f"/api/v1/webhooks/{endpoint['id']}/deliveries/"

        def delivered():
            rows = owner_api.get(log_url).json()["results"]
            return rows if rows and rows[0]["state"] == "delivered" else None

        [row] = wait_for(delivered, timeout=90)

    assert (row["attempts"], row["last_status_code"]) == (2, 200), logs(workers)
    assert len(receiver.received) == 2
    assert receiver.received[0].event["id"] == receiver.received[1].event["id"]  # the same event, sent again


def test_repeated_failures_disable_the_endpoint_with_the_reason(workers, owner_api):
    with running_receiver([500]) as receiver:
        endpoint = register(owner_api, receiver.url, ["prediction.finished"])
        files = [upload(f"down{i}.png", seed=320 + i) for i in range(2)]
        owner_api.post("/api/v1/images/", {"file": files}, format="multipart")

        def disabled():
            body = owner_api.get(f"/api/v1/webhooks/{endpoint['id']}/").json()
            return body if not body["is_active"] else None

        body = wait_for(disabled, timeout=90)

    assert body["consecutive_failures"] == 2, logs(workers)
    assert "Disabled after 2 deliveries in a row failed" in body["disabled_reason"]
    assert "HTTP 500" in body["disabled_reason"]
    assert len(receiver.received) == 4  # two deliveries, two attempts each
