"""API hardening: rate limits, token revocation, CSRF, malformed requests."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from classifier.models import LesionImage
from tests.conftest import token_client
from tests.factories import make_image
from tests.images import upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_throttle_counters():
    cache.clear()
    yield
    cache.clear()


def test_uploads_over_the_per_user_rate_get_429_and_store_nothing(owner_api, outsider_api, settings):
    settings.UPLOAD_RATE_LIMIT = "2/minute"
    statuses = [owner_api.post("/api/v1/images/", {"file": [upload(f"{i}.png", seed=i)]}).status_code for i in range(3)]

    assert statuses == [201, 201, 429]
    assert LesionImage.objects.count() == 2
    # Another clinician has their own allowance; reading is not limited.
    assert outsider_api.post("/api/v1/images/", {"file": [upload(seed=9)]}).status_code == 201
    assert owner_api.get("/api/v1/images/").status_code == 200


def test_a_429_says_when_to_retry(owner_api, settings):
    settings.UPLOAD_RATE_LIMIT = "1/minute"
    owner_api.post("/api/v1/images/", {"file": [upload(seed=1)]})
    response = owner_api.post("/api/v1/images/", {"file": [upload(seed=2)]})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_a_revoked_token_stops_working_at_once(owner):
    client = token_client(owner)
    assert client.get("/api/v1/images/").status_code == 200

    assert client.delete("/api/v1/auth/token/revoke/").status_code == 204

    assert client.get("/api/v1/images/").status_code == 401


def test_session_authenticated_api_writes_need_a_csrf_token(owner):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/api/v1/images/", {"file": [upload()]})
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert LesionImage.objects.count() == 0


def test_the_login_form_needs_a_csrf_token(owner):
    from django.test import Client

    assert Client(enforce_csrf_checks=True).post("/login/", {"username": "alice"}).status_code == 403


def test_nobody_can_delete_images_through_the_api(owner_api, outsider_api, owner):
    image = make_image(owner)
    assert owner_api.delete(f"/api/v1/images/{image.pk}/").status_code == 405
    assert outsider_api.delete(f"/api/v1/images/{image.pk}/").status_code in (404, 405)
    assert LesionImage.objects.filter(pk=image.pk).exists()


def test_huge_json_is_refused_without_a_server_error(admin_user, owner):
    image = make_image(owner)
    body = json.dumps({"diagnosis": "mel", "method": "histo", "note": "x" * 5_000_000})
    response = token_client(admin_user).post(f"/api/v1/images/{image.pk}/label/", body, content_type="application/json")
    assert response.status_code in (400, 413)
    image.refresh_from_db()
    assert image.diagnosis == ""


@pytest.mark.parametrize("body", ["{not json", "[]", '{"diagnosis": 7, "method": []}', '"mel"'])
def test_malformed_json_gets_a_400(admin_user, owner, body):
    image = make_image(owner)
    response = token_client(admin_user).post(f"/api/v1/images/{image.pk}/label/", body, content_type="application/json")
    assert response.status_code == 400
