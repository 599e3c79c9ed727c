"""GET /api/v1/predictions/ and /api/v1/images/: fields, filters, pagination."""

from __future__ import annotations

import pytest

from tests.factories import make_prediction

pytestmark = pytest.mark.django_db


def test_a_done_prediction_shows_probabilities_by_class_and_its_timings(owner_api, owner):
    prediction = make_prediction(owner, status="done", top_class="mel")

    body = owner_api.get(f"/api/v1/predictions/{prediction.pk}/").json()

    assert body["status"] == "done"
    assert body["top_class"] == "mel"
    assert body["top_class_name"] == "Melanoma"
    assert list(body["probabilities"]) == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["malignant_probability"] == pytest.approx(0.7 + 2 * 0.05)
    for field in ("model_version", "created_at", "started_at", "finished_at", "inference_ms", "queue_seconds"):
        assert field in body


def test_predictions_filter_by_status_and_top_class(owner_api, owner):
    make_prediction(owner, status="done", top_class="mel")
    make_prediction(owner, status="done", top_class="nv")
    make_prediction(owner, status="queued")

    def ids(query):
        return {item["top_class"] for item in owner_api.get(f"/api/v1/predictions/?{query}").json()["results"]}

    assert ids("status=done") == {"mel", "nv"}
    assert ids("top_class=mel") == {"mel"}
    assert owner_api.get("/api/v1/predictions/?status=queued").json()["count"] == 1
    assert owner_api.get("/api/v1/predictions/?status=bogus").status_code == 400


def test_lists_are_paginated_newest_first(owner_api, owner):
    made = [make_prediction(owner) for _ in range(25)]

    first = owner_api.get("/api/v1/predictions/").json()
    second = owner_api.get(first["next"]).json()

    assert first["count"] == 25
    assert len(first["results"]) == 20 and len(second["results"]) == 5
    assert first["results"][0]["id"] == made[-1].pk


def test_an_image_shows_its_latest_prediction_and_a_private_file_url(owner_api, owner):
    prediction = make_prediction(owner, status="done")

    body = owner_api.get(f"/api/v1/images/{prediction.image_id}/").json()

    assert body["prediction"]["id"] == prediction.pk
    assert body["file_url"].endswith(f"/images/{prediction.image_id}/file/")
    assert "/media/" not in body["file_url"]


def test_a_token_is_issued_for_a_username_and_password(anonymous_api, owner):
    response = anonymous_api.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 200
    token = response.json()["token"]

    anonymous_api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert anonymous_api.get("/api/v1/images/").status_code == 200


def test_a_wrong_password_gets_no_token(anonymous_api, owner):
    response = anonymous_api.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 400
    assert "token" not in response.json()


def test_the_openapi_schema_and_docs_are_served(owner_web):
    schema = owner_web.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/images/" in schema.content and b"/api/v1/predictions/{id}/" in schema.content
    assert owner_web.get("/api/docs/").status_code == 200
