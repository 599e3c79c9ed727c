"""Nothing Django answers is kept by a cache, patient pictures included, and every page carries the CSP.

Static files are the exception: they hold no patient data and keep WhiteNoise's caching.
"""

from __future__ import annotations

import pytest

from tests.factories import make_image, make_prediction

pytestmark = pytest.mark.django_db

CSP = "Content-Security-Policy"


def directives(response) -> dict[str, str]:
    parts = (part.strip().split(" ", 1) for part in response[CSP].split(";"))
    return {name: value for name, value in parts}


def assert_never_stored(response):
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert "no-store" in directives
    assert not any(part.startswith("max-age=") and part != "max-age=0" for part in directives)


@pytest.fixture
def image(owner):
    image = make_image(owner, original_filename="forearm.png")
    make_prediction(owner, status="done", image=image, top_class="nv", top_probability=0.9, is_malignant=False)
    return image


def test_a_page_with_patient_data_is_never_stored_and_carries_the_policy(owner_web, image):
    response = owner_web.get("/history/")

    assert response.status_code == 200
    assert_never_stored(response)
    policy = directives(response)
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["img-src"] == "'self' data: blob:"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-eval" not in response[CSP] and "'unsafe-inline'" not in policy["script-src"]


def test_an_api_answer_is_never_stored(owner_api, image):
    response = owner_api.get("/api/v1/images/")

    assert response.status_code == 200
    assert_never_stored(response)
    assert CSP in response


@pytest.mark.parametrize("kind", ["file", "thumbnail"])
def test_an_image_file_is_private_and_never_stored_even_by_the_browser(owner_web, image, kind):
    response = owner_web.get(f"/images/{image.pk}/{kind}/")

    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_login_page_and_a_missing_page_say_the_same(client):
    for response in (client.get("/login/"), client.get("/no-such-page/")):
        assert_never_stored(response)
        assert directives(response)["frame-ancestors"] == "'none'"


def test_a_view_that_says_how_it_may_be_cached_is_believed(client, monkeypatch):
    from classifier import health

    monkeypatch.setattr(health, "full_report", lambda: {"status": "ok"})
    # /healthz says never_cache itself: its words stand.
    assert client.get("/healthz")["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"


def test_static_files_keep_their_caching(client, settings):
    settings.WHITENOISE_USE_FINDERS = True  # serve static/ without collectstatic, as the test needs
    settings.WHITENOISE_AUTOREFRESH = True
    response = client.get("/static/lesionsite.css")

    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


def test_the_api_docs_page_loads_its_script_from_the_site(owner_web):
    page = owner_web.get("/api/docs/")
    assert page.status_code == 200
    assert b"<script>" not in page.content  # an inline script would be refused by script-src 'self'
    assert owner_web.get("/api/docs/?script=").status_code == 200
