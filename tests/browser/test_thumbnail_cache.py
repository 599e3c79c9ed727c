"""Thumbnails in Chromium: never kept in the browser's cache (no-store), so never shown from it after logout."""

from __future__ import annotations

import pytest
from django.core.signals import request_started

from tests.browser.conftest import lesion_image, log_in
from tests.factories import make_prediction

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def thumbnail_requests():
    """The paths of the thumbnail requests that reached the live server (it runs in this process)."""
    seen: list[str] = []

    def record(sender, environ, **kwargs):
        if environ["PATH_INFO"].endswith("/thumbnail/"):
            seen.append(environ["PATH_INFO"])

    request_started.connect(record)
    yield seen
    request_started.disconnect(record)


def shown(page) -> bool:
    thumb = page.locator("img.thumb").first
    thumb.wait_for()
    return page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())


def test_the_browser_never_keeps_a_thumbnail_so_the_next_user_cannot_see_it(
    page, live_server, owner, outsider, thumbnail_requests
):
    image = lesion_image(owner, 7, original_filename="shoulder.png")
    make_prediction(owner, status="done", top_class="nv", image=image, top_probability=0.8, is_malignant=False)
    url = f"{live_server.url}/images/{image.pk}/thumbnail/"

    log_in(page, live_server.url, "alice", "alice-password-1")
    page.get_by_role("link", name="History").click()
    assert shown(page)
    page.get_by_role("link", name="Upload").click()
    page.get_by_role("link", name="History").click()
    assert shown(page)
    assert thumbnail_requests == [f"/images/{image.pk}/thumbnail/"] * 2  # the second time too: nothing was kept

    page.get_by_role("button", name="Log out alice").click()
    page.wait_for_url(f"{live_server.url}/login/")
    anonymous = page.goto(url)
    assert anonymous.url.startswith(f"{live_server.url}/login/")

    log_in(page, live_server.url, "bob", "bob-password-1")
    response = page.goto(url)
    assert response.status == 404
    assert len(thumbnail_requests) == 4  # asked the server each time, not the cache
