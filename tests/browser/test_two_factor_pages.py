"""A clinic manager's first sign-in in Chromium: sent to set up two-factor sign-in, then asked the code next time."""

from __future__ import annotations

import re
from base64 import b32decode

import pytest
from django_otp.oath import TOTP

from tests.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def app_code(secret_text: str, steps_ahead: int = 0) -> str:
    """What an authenticator app shows for a secret typed in from the page."""
    import time

    secret = secret_text.replace(" ", "")
    totp = TOTP(b32decode(secret + "=" * (-len(secret) % 8)))
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def test_a_manager_sets_up_the_app_and_gives_a_code_at_the_next_sign_in(page, live_server, manager):
    base = live_server.url
    log_in(page, base, "mary", "mary-password-1", landing="/account/two-factor/")
    page.goto(f"{base}/patients/")
    page.wait_for_url(f"{base}/account/two-factor/")  # nothing else opens first

    assert page.locator("figure.qr svg").is_visible()
    secret = page.locator("[data-secret]").inner_text()
    screenshot(page, "two-factor-enrol")
    page.get_by_label("Code").fill(app_code(secret))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()

    codes = page.locator("[data-recovery-codes] code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="I have saved them: continue").click()
    page.wait_for_url(f"{base}/upload/")

    page.get_by_role("button", name="Log out mary").click()
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill("mary")
    page.get_by_label("Password").fill("mary-password-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/login/code/"))
    page.get_by_label("Code").fill(app_code(secret, steps_ahead=1))  # this step's code was used to confirm
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{base}/upload/")
