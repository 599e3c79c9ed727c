"""Signing in with a second factor: the code after the password, wrong codes counted, recovery codes,
and staff and clinic managers made to set it up before anything else opens."""

from __future__ import annotations

import re

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from classifier import two_factor
from classifier.audit import AuditEvent
from tests.signing_in import code_for, enrolled_phone

pytestmark = pytest.mark.django_db


def sign_in(client, username, password, next_url=""):
    data = {"username": username, "password": password}
    return client.post(f"/login/?next={next_url}" if next_url else "/login/", {**data, "next": next_url})


def give_code(client, code, next_url="/upload/"):
    return client.post("/login/code/", {"code": code, "next": next_url})


def wrong_code(device) -> str:
    return f"{(int(code_for(device)) + 1) % 1_000_000:06d}"


def test_an_enrolled_user_gives_a_code_after_the_password(owner):
    device = enrolled_phone(owner)
    client = Client()

    after_password = sign_in(client, "alice", "alice-password-1", "/history/")
    assert after_password.status_code == 302
    # Nothing opens before the code: every page sends to the code step, keeping where the user was going.
    for url in ("/history/", "/upload/", "/patients/", "/password/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/code/?next="), url
    assert "Enter the code your authenticator app shows" in client.get("/login/code/?next=/history/").content.decode()

    response = give_code(client, code_for(device), "/history/")

    assert response.status_code == 302 and response["Location"] == "/history/"
    assert client.get("/history/").status_code == 200


def test_a_clinician_who_has_not_enrolled_signs_in_with_the_password_alone(owner):
    client = Client()
    sign_in(client, "alice", "alice-password-1")

    assert client.get("/upload/").status_code == 200


def test_the_setting_makes_clinicians_enrol_too(owner, settings):
    settings.TWO_FACTOR_REQUIRED_FOR_CLINICIANS = True
    client = Client()
    sign_in(client, "alice", "alice-password-1")

    response = client.get("/upload/")

    assert response.status_code == 302 and response["Location"] == "/account/two-factor/"


@pytest.mark.parametrize("who", ["manager", "staff"])
def test_staff_and_managers_must_enrol_before_any_other_page_opens(who, manager, django_user_model):
    if who == "staff":
        django_user_model.objects.create_user("sid", password="sid-password-12", is_staff=True)
    username, password = ("mary", "mary-password-1") if who == "manager" else ("sid", "sid-password-12")
    client = Client()
    sign_in(client, username, password)

    for url in ("/upload/", "/clinic/members/", "/patients/", "/admin/", "/password/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == "/account/two-factor/", url
    page = client.get("/account/two-factor/")
    assert page.status_code == 200 and "Your account must use two-factor sign-in" in page.content.decode()


def test_a_wrong_code_is_refused_and_counted_as_a_failed_sign_in(owner):
    device = enrolled_phone(owner)
    client = Client(REMOTE_ADDR="10.0.0.5")
    sign_in(client, "alice", "alice-password-1")

    guess = wrong_code(device)
    response = give_code(client, guess)

    assert response.status_code == 400
    assert "Code: That code is wrong or has expired" in response.content.decode()
    assert guess not in str(list(AccessAttempt.objects.values()))  # counted, never kept as typed
    assert client.get("/upload/").status_code == 302  # still not through
    assert AccessAttempt.objects.get(username="alice").failures_since_start == 1
    failure = AccessFailureLog.objects.get()
    assert (failure.username, failure.ip_address, failure.path_info) == ("alice", "10.0.0.5", "/login/code/")
    device.refresh_from_db()
    assert device.throttling_failure_count == 1


def test_after_a_wrong_code_the_next_try_must_wait_even_with_the_right_code(owner, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 60  # a minute's wait, not a second's: a slow machine does not outlast it
    device = enrolled_phone(owner)
    client = Client()
    sign_in(client, "alice", "alice-password-1")
    give_code(client, wrong_code(device))

    response = give_code(client, code_for(device))

    assert response.status_code == 400 and "Too many wrong codes in a row: wait " in response.content.decode()
    assert re.search(r"wait ([1-5][0-9]|60) seconds and try again", response.content.decode())
    assert client.get("/upload/").status_code == 302


def test_wrong_codes_lock_the_account_as_wrong_passwords_do(owner):
    device = enrolled_phone(owner)
    client = Client()
    sign_in(client, "alice", "alice-password-1")
    for _ in range(4):
        give_code(client, wrong_code(device))
        device.throttle_reset()  # the device's own wait is tested above; here, axes' count

    locked = give_code(client, wrong_code(device))

    assert locked.status_code == 429 and "Sign-in is locked for this account" in locked.content.decode()
    assert client.get("/upload/")["Location"].startswith("/login/")  # signed out
    assert sign_in(Client(REMOTE_ADDR="10.9.9.9"), "alice", "alice-password-1").status_code == 429


def test_signing_in_again_does_not_forget_the_devices_count_of_wrong_codes(owner, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    device = enrolled_phone(owner)
    client = Client()
    sign_in(client, "alice", "alice-password-1")
    give_code(client, wrong_code(device))
    give_code(client, wrong_code(device))  # refused unchecked: the wait after the first

    sign_in(client, "alice", "alice-password-1")  # axes forgets the account's failures here...

    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # ...the device does not, until a right code
    assert "Too many wrong codes" in give_code(client, code_for(device)).content.decode()


def test_a_recovery_code_signs_in_once_only(owner):
    enrolled_phone(owner)
    code = two_factor.new_recovery_codes(owner)[0]
    first = Client()
    sign_in(first, "alice", "alice-password-1")

    response = give_code(first, code.upper())  # as typed from a printout

    assert response.status_code == 302 and first.get("/upload/").status_code == 200
    assert two_factor.recovery_codes_left(owner) == 9
    assert AuditEvent.objects.filter(action="used_recovery_code", username="alice").count() == 1
    second = Client()
    sign_in(second, "alice", "alice-password-1")
    again = give_code(second, code)
    assert again.status_code == 400 and "That recovery code is wrong or was used already" in again.content.decode()


def test_the_code_step_sends_only_to_this_site(owner):
    device = enrolled_phone(owner)
    client = Client()
    sign_in(client, "alice", "alice-password-1")

    response = give_code(client, code_for(device), "https://evil.example/")

    assert response.status_code == 302 and response["Location"] == "/upload/"


def test_the_code_step_gives_a_new_session_id(owner):
    device = enrolled_phone(owner)
    client = Client()
    sign_in(client, "alice", "alice-password-1")
    before = client.cookies["sessionid"].value

    give_code(client, code_for(device))

    assert client.cookies["sessionid"].value != before


def test_the_admin_wants_a_staff_session_that_gave_its_code(admin_user):
    device = enrolled_phone(admin_user)
    client = Client()
    signed = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": "password"})
    assert signed.status_code == 302

    assert client.get("/admin/")["Location"] == "/login/code/?next=%2Fadmin%2F"
    # The admin's own check too: its login page does not take the unfinished session for a signed-in admin.
    assert client.get("/admin/login/").status_code == 200
    give_code(client, code_for(device), "/admin/")
    assert client.get("/admin/").status_code == 200


def test_the_admin_shows_no_secret_of_a_device(admin_client, owner):
    device = enrolled_phone(owner)

    page = admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()

    assert page.count(device.key) == 0 and "Identity" in page
    assert TOTPDevice.objects.filter(pk=device.pk).exists()


def test_whether_clinicians_must_enrol_comes_from_the_environment(tmp_path):
    import json

    from tests.test_settings_env import settings_in_a_fresh_process

    var = {"LESIONSITE_VAR_DIR": str(tmp_path)}
    default = json.loads(settings_in_a_fresh_process(var, "TWO_FACTOR_REQUIRED_FOR_CLINICIANS").stdout)
    told = settings_in_a_fresh_process(
        {**var, "TWO_FACTOR_REQUIRED_FOR_CLINICIANS": "1"}, "TWO_FACTOR_REQUIRED_FOR_CLINICIANS"
    )
    wrong = settings_in_a_fresh_process({**var, "TWO_FACTOR_REQUIRED_FOR_CLINICIANS": "maybe"}, "OTP_TOTP_ISSUER")

    assert default == {"TWO_FACTOR_REQUIRED_FOR_CLINICIANS": "False"}
    assert json.loads(told.stdout) == {"TWO_FACTOR_REQUIRED_FOR_CLINICIANS": "True"}
    assert wrong.returncode != 0 and "TWO_FACTOR_REQUIRED_FOR_CLINICIANS='maybe' is not a boolean" in wrong.stderr
