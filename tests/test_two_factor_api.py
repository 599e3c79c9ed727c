"""The API and two-factor sign-in: a token needs a current code from an enrolled user, and a session
that has not given its code is refused."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from rest_framework.test import APIClient

from classifier import two_factor
from tests.signing_in import code_for, enrolled_phone, verified_login

pytestmark = pytest.mark.django_db
TOKEN = "/api/v1/auth/token/"
ALICE = {"username": "alice", "password": "alice-password-1"}


def test_an_enrolled_user_without_a_code_gets_no_token_and_is_told_the_field(owner, anonymous_api):
    enrolled_phone(owner)

    response = anonymous_api.post(TOKEN, ALICE)

    assert response.status_code == 400
    assert list(response.json()) == ["otp"]
    assert "send the code from your authenticator app" in response.json()["otp"][0]


def test_an_enrolled_user_with_the_current_code_gets_a_token_that_works(owner, anonymous_api):
    device = enrolled_phone(owner)

    response = anonymous_api.post(TOKEN, {**ALICE, "otp": code_for(device)})

    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/v1/images/").status_code == 200


def test_a_wrong_code_gets_no_token_and_is_counted(owner, anonymous_api):
    device = enrolled_phone(owner)

    response = anonymous_api.post(TOKEN, {**ALICE, "otp": f"{(int(code_for(device)) + 1) % 1_000_000:06d}"})

    assert response.status_code == 400
    assert response.json() == {"otp": ["That code is wrong or has expired: enter the one your app shows now."]}
    assert AccessAttempt.objects.get(username="alice").failures_since_start == 1
    device.refresh_from_db()
    assert device.throttling_failure_count == 1


def test_a_recovery_code_gets_a_token_once(owner, anonymous_api):
    enrolled_phone(owner)
    code = two_factor.new_recovery_codes(owner)[0]

    assert anonymous_api.post(TOKEN, {**ALICE, "otp": code}).status_code == 200
    assert anonymous_api.post(TOKEN, {**ALICE, "otp": code}).status_code == 400


def test_a_manager_who_has_not_enrolled_gets_no_token(manager, anonymous_api):
    response = anonymous_api.post(TOKEN, {"username": "mary", "password": "mary-password-1"})

    assert response.status_code == 400
    assert "must use two-factor sign-in: set it up at /account/two-factor/" in response.json()["otp"][0]


def test_a_clinician_who_has_not_enrolled_still_gets_a_token_with_the_password(owner, anonymous_api):
    assert anonymous_api.post(TOKEN, ALICE).status_code == 200


def test_a_session_that_has_not_given_its_code_is_refused_by_the_api(client, owner):
    enrolled_phone(owner)
    client.force_login(owner)  # the password step only

    response = client.get("/api/v1/images/")

    assert response.status_code == 403
    assert "has not given its two-factor code" in response.json()["detail"]


def test_a_manager_session_that_has_not_enrolled_is_refused_by_the_api(client, manager):
    client.force_login(manager)

    response = client.get("/api/v1/patients/")

    assert response.status_code == 403 and "must use two-factor sign-in" in response.json()["detail"]


def test_a_session_that_gave_its_code_uses_the_api(client, manager):
    verified_login(client, manager)

    assert client.get("/api/v1/patients/").status_code == 200


def test_wrong_codes_lock_the_token_api_as_wrong_passwords_do(owner, anonymous_api):
    device = enrolled_phone(owner)
    wrong = f"{(int(code_for(device)) + 1) % 1_000_000:06d}"
    for _ in range(4):
        assert anonymous_api.post(TOKEN, {**ALICE, "otp": wrong}).status_code == 400
        device.throttle_reset()  # the device's own one-second wait is not what this test is about

    locked = anonymous_api.post(TOKEN, {**ALICE, "otp": wrong})

    assert locked.status_code == 429 and "Sign-in is locked for this account" in locked.json()["detail"]
    assert anonymous_api.post(TOKEN, {**ALICE, "otp": code_for(device)}).status_code == 429
