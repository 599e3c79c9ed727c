"""The API tokens page in Chromium: issue a token for a device, use it, revoke it."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def status_with(base_url: str, key: str) -> int:
    request = urllib.request.Request(f"{base_url}/api/v1/images/", headers={"Authorization": f"Token {key}"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_a_clinician_issues_a_token_for_a_device_and_revokes_it(page, live_server, owner):
    log_in(page, live_server.url, "alice", "alice-password-1")
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_url(f"{live_server.url}/account/tokens/")
    assert page.get_by_text("You have no API tokens.").is_visible()

    page.get_by_label("What it is for").fill("ward laptop")
    page.get_by_role("button", name="Issue a token").click()

    key = page.get_by_label("The new token's key").input_value()
    assert len(key) == 64 and status_with(live_server.url, key) == 200
    assert page.get_by_role("row", name="ward laptop").get_by_text("never").is_visible()
    screenshot(page, "api-tokens-issued")

    page.get_by_role("button", name="Revoke ward laptop").click()

    assert page.get_by_text("Revoked ward laptop").is_visible()
    assert page.get_by_text("You have no API tokens.").is_visible()
    assert status_with(live_server.url, key) == 401
