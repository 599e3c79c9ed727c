"""Setting up two-factor sign-in on /account/two-factor/: QR code and secret, a code to confirm, recovery codes once."""

from __future__ import annotations

import re
from base64 import b32decode, b32encode

import pytest
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from classifier import two_factor
from classifier.audit import AuditEvent
from tests.signing_in import code_for, verified_login

pytestmark = pytest.mark.django_db
PAGE = "/account/two-factor/"


def shown_secret(page: str) -> bytes:
    secret = re.search(r"<code data-secret>([A-Z2-7 ]+)</code>", page).group(1).replace(" ", "")
    return b32decode(secret + "=" * (-len(secret) % 8))


def shown_codes(page: str) -> list[str]:
    block = re.search(r"<ul class=\"recovery-codes\" data-recovery-codes>(.*?)</ul>", page, re.S).group(1)
    return re.findall(r"<code>([a-z2-7]+)</code>", block)


def test_it_shows_a_qr_code_and_the_secret_and_keeps_them_on_reload(owner_web, owner):
    first = owner_web.get(PAGE)
    page = first.content.decode()

    assert first.status_code == 200
    assert '<svg viewBox="' in page and "QR code for your authenticator app" in page
    assert "<script" not in page.split("<main", 1)[1]  # nothing inline for the CSP to refuse
    device = TOTPDevice.objects.get(user=owner)
    assert not device.confirmed
    assert shown_secret(page) == device.bin_key
    # The QR code is the otpauth:// link with that secret, under the site's name.
    assert two_factor.qr_svg(device) in page
    assert device.config_url.startswith("otpauth://totp/lesionsite%3Aalice?secret=")
    assert f"secret={b32encode(device.bin_key).decode()}" in device.config_url
    assert shown_secret(owner_web.get(PAGE).content.decode()) == device.bin_key  # the same secret: a reload keeps it


def test_a_code_from_the_secret_turns_it_on_and_shows_ten_recovery_codes_once(owner_web, owner):
    owner_web.get(PAGE)
    device = TOTPDevice.objects.get(user=owner)

    response = owner_web.post(PAGE, {"action": "confirm", "code": code_for(device)})

    page = response.content.decode()
    assert response.status_code == 200 and "shown only this once" in page
    codes = shown_codes(page)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert set(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True)) == set(codes)
    device.refresh_from_db()
    assert device.confirmed
    assert AuditEvent.objects.filter(action="enabled_two_factor", username="alice").count() == 1
    # The session gave its code: the other pages open, and the page now shows no codes again.
    assert owner_web.get("/upload/").status_code == 200
    again = owner_web.get(PAGE).content.decode()
    assert "10</span> unused recovery codes" in again and not any(code in again for code in codes)


def test_a_wrong_code_does_not_turn_it_on(owner_web, owner):
    owner_web.get(PAGE)

    response = owner_web.post(PAGE, {"action": "confirm", "code": "000000"})

    assert response.status_code == 400
    assert "Code: That code does not match" in response.content.decode()
    assert not TOTPDevice.objects.get(user=owner).confirmed
    assert not StaticToken.objects.exists()


def test_new_recovery_codes_replace_the_old_ones(client, owner):
    verified_login(client, owner)
    old = shown_codes(client.post(PAGE, {"action": "new_codes"}).content.decode())

    new = shown_codes(client.post(PAGE, {"action": "new_codes"}).content.decode())

    assert len(new) == 10 and not set(old) & set(new)
    assert set(StaticToken.objects.values_list("token", flat=True)) == set(new)
    assert AuditEvent.objects.filter(action="new_recovery_codes").count() == 2


def test_turning_it_off_needs_a_current_code(client, owner):
    verified_login(client, owner)
    device = TOTPDevice.objects.get(user=owner)

    refused = client.post(PAGE, {"action": "turn_off", "code": "123456"})
    assert refused.status_code == 400 and "Code: That code is wrong" in refused.content.decode()
    assert TOTPDevice.objects.filter(user=owner).exists()

    device.throttle_reset()  # the wrong code's wait (a second) is not what this test is about
    turned_off = client.post(PAGE, {"action": "turn_off", "code": code_for(device)})
    assert turned_off.status_code == 302
    assert not TOTPDevice.objects.filter(user=owner).exists() and not StaticToken.objects.exists()
    assert AuditEvent.objects.filter(action="disabled_two_factor").count() == 1


def test_a_manager_who_turns_it_off_is_sent_to_set_it_up_again(client, manager):
    verified_login(client, manager)
    device = TOTPDevice.objects.get(user=manager)
    client.post(PAGE, {"action": "turn_off", "code": code_for(device)})

    response = client.get("/clinic/members/")

    assert response.status_code == 302 and response["Location"] == PAGE


def test_an_unfinished_sign_in_cannot_manage_it(client, owner):
    verified_login(client, owner)
    client.logout()
    client.force_login(owner)  # the password step only

    response = client.post(PAGE, {"action": "new_codes"})

    assert response.status_code == 302 and response["Location"].startswith("/login/code/")
    assert not StaticToken.objects.exists()
