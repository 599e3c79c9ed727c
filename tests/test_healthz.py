"""/healthz reports the database, the broker, live inference workers and the active model; 503 when one is down.

The parts are shown to callers from HEALTHZ_DETAIL_FROM (here the test client's 127.0.0.1);
who else sees them, and the anonymous answer's cache, are in test_healthz_access.py.
"""

from __future__ import annotations

import ipaddress

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client(client, settings):
    settings.HEALTHZ_DETAIL_FROM = [ipaddress.ip_network("127.0.0.1/32")]
    return client


def test_it_is_ok_with_a_worker_a_broker_a_database_and_a_model(client, celery_worker, active_tiny_model):
    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert celery_worker.node in body["inference_workers"]["workers"]
    assert body["model"]["active_version"] == "tiny-v1"


def test_it_answers_503_without_an_active_model(client, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["model"]["error"] == "no active model version"


def test_it_answers_503_when_the_broker_is_unreachable(client, celery_worker, active_tiny_model):
    from lesionsite.celery import app

    reachable = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = reachable

    body = response.json()
    assert response.status_code == 503
    assert body["broker"]["ok"] is False and body["inference_workers"]["error"] == "broker down"
    assert body["database"]["ok"] is True


def test_an_anonymous_caller_gets_the_verdict_alone(anonymous_api, celery_worker, active_tiny_model, settings):
    settings.HEALTHZ_DETAIL_FROM = []
    response = anonymous_api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
