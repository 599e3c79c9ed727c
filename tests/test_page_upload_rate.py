"""The upload pages share the API's per-user upload budget (UPLOAD_RATE_LIMIT, one counter): over it, a 429
that says so and when to retry, and nothing is stored."""

from __future__ import annotations

import pytest

from classifier.models import LesionImage
from tests.conftest import token_client
from tests.factories import make_lesion, make_patient
from tests.images import upload

pytestmark = pytest.mark.django_db


def page_upload(client, seed: int, **headers):
    return client.post("/upload/", {"files": [upload(f"{seed}.png", seed=seed)]}, **headers)


def test_the_upload_page_answers_429_over_the_rate_and_stores_nothing(owner_web, settings):
    settings.UPLOAD_RATE_LIMIT = "2/minute"

    statuses = [page_upload(owner_web, seed).status_code for seed in range(3)]

    assert statuses == [302, 302, 429]
    assert LesionImage.objects.count() == 2
    refused = page_upload(owner_web, 7)
    page = refused.content.decode()
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many uploads" in page and "2/minute per person, through the pages and the API together" in page
    assert 'href="/upload/"' in page


def test_the_upload_pages_fetch_gets_the_429_in_json(owner_web, settings):
    settings.UPLOAD_RATE_LIMIT = "1/minute"
    assert page_upload(owner_web, 1, HTTP_ACCEPT="application/json").status_code == 201

    response = page_upload(owner_web, 2, HTTP_ACCEPT="application/json")

    body = response.json()
    assert response.status_code == 429 and body["code"] == "throttled" and body["retry_after"] > 0
    assert body["detail"].startswith("Nothing was stored: you have uploaded as often as allowed")


def test_the_api_and_the_pages_draw_on_one_budget(owner, owner_web, settings):
    settings.UPLOAD_RATE_LIMIT = "2/minute"
    api = token_client(owner)

    assert api.post("/api/v1/images/", {"file": [upload(seed=1)]}).status_code == 201
    assert page_upload(owner_web, 2).status_code == 302
    assert page_upload(owner_web, 3).status_code == 429
    assert api.post("/api/v1/images/", {"file": [upload(seed=4)]}).status_code == 429
    assert LesionImage.objects.count() == 2


def test_a_lesions_visit_upload_counts_too(owner_web, clinic, settings):
    settings.UPLOAD_RATE_LIMIT = "1/minute"
    lesion = make_lesion(make_patient(clinic))
    url = f"/lesions/{lesion.pk}/visits/"
    assert owner_web.post(url, {"files": [upload(seed=1)]}).status_code == 302

    refused = owner_web.post(url, {"files": [upload(seed=2)]})

    assert refused.status_code == 429 and "Too many uploads" in refused.content.decode()
    assert f'href="/lesions/{lesion.pk}/"' in refused.content.decode()
    assert lesion.images.count() == 1


def test_another_clinician_has_their_own_budget(owner_web, client, teammate, settings):
    settings.UPLOAD_RATE_LIMIT = "1/minute"
    page_upload(owner_web, 1)
    assert page_upload(owner_web, 2).status_code == 429

    client.force_login(teammate)
    assert page_upload(client, 3).status_code == 302
