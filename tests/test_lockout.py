"""Password guessing is locked out (django-axes) on the login page, the admin's login and the token API."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests.test_settings_env import settings_in_a_fresh_process

pytestmark = pytest.mark.django_db

LIMIT = 5  # LOGIN_FAILURE_LIMIT's default
LOCKED_WORDS = (
    "Sign-in is locked for this account or from this address after 5 failed attempts. Try again in 15 minutes"
)


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-password-12")


def web_login(client, username, password):
    return client.post("/login/", {"username": username, "password": password})


def admin_login(client, username, password):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def api_login(client, username, password):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password})


def signed_in(entry, response) -> bool:
    if entry is api_login:
        return response.status_code == 200 and "token" in response.json()
    return response.status_code == 302


ENTRIES = [
    pytest.param(web_login, ("alice", "alice-password-1"), id="login-page"),
    pytest.param(admin_login, ("root", "root-password-12"), id="admin-login"),
    pytest.param(api_login, ("alice", "alice-password-1"), id="token-api"),
]


def make_client(entry, address="10.0.0.1"):
    return (APIClient if entry is api_login else Client)(REMOTE_ADDR=address)


def assert_locked(entry, response):
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    if entry is api_login:
        assert LOCKED_WORDS in response.json()["detail"]
        assert "token" not in response.json()
    else:
        assert LOCKED_WORDS in response.content.decode()


def move_attempts_back(minutes):
    """As if that many minutes had passed since the failed attempts."""
    earlier = timezone.now() - dt.timedelta(minutes=minutes)
    AccessAttempt.objects.update(attempt_time=earlier)


@pytest.mark.parametrize(("entry", "account"), ENTRIES)
def test_it_locks_an_account_after_the_failure_limit_and_refuses_even_the_right_password(
    entry, account, owner, admin_user
):
    username, password = account
    client = make_client(entry)
    for _ in range(LIMIT - 1):
        assert not signed_in(entry, entry(client, username, "a-wrong-guess"))

    assert_locked(entry, entry(client, username, "a-wrong-guess"))
    assert_locked(entry, entry(client, username, password))
    # ...from any other address too: the account is locked, not only the guesser.
    assert_locked(entry, entry(make_client(entry, "10.9.9.9"), username, password))


@pytest.mark.parametrize(("entry", "account"), ENTRIES)
def test_it_locks_an_address_that_guesses_at_many_accounts(entry, account, owner, admin_user):
    username, password = account
    client = make_client(entry)
    for n in range(LIMIT):
        entry(client, f"nobody-{n}", "a-wrong-guess")

    assert_locked(entry, entry(client, username, password))
    assert signed_in(entry, entry(make_client(entry, "10.9.9.9"), username, password))


@pytest.mark.parametrize(("entry", "account"), ENTRIES)
def test_the_lock_lifts_after_the_cool_off(entry, account, owner, admin_user):
    username, password = account
    client = make_client(entry)
    for _ in range(LIMIT):
        entry(client, username, "a-wrong-guess")
    assert_locked(entry, entry(client, username, password))

    move_attempts_back(14)
    assert_locked(entry, entry(client, username, password))  # still inside the 15 minutes

    move_attempts_back(16)
    assert signed_in(entry, entry(client, username, password))


@pytest.mark.parametrize(("entry", "account"), ENTRIES)
def test_a_successful_sign_in_resets_the_count(entry, account, owner, admin_user):
    username, password = account
    for _ in range(LIMIT - 1):
        entry(make_client(entry), username, "a-wrong-guess")
    assert signed_in(entry, entry(make_client(entry), username, password))

    for _ in range(LIMIT - 1):
        assert not signed_in(entry, entry(make_client(entry), username, "a-wrong-guess"))
    assert signed_in(entry, entry(make_client(entry), username, password))


def test_failures_are_logged_without_the_password(owner):
    client = Client(REMOTE_ADDR="10.0.0.7")
    web_login(client, "alice", "secret-guess-123")

    failure = AccessFailureLog.objects.get()
    assert (failure.username, failure.ip_address, failure.path_info) == ("alice", "10.0.0.7", "/login/")
    assert not AccessFailureLog.objects.filter(user_agent__contains="secret-guess-123").exists()
    assert "secret-guess-123" not in str(list(AccessAttempt.objects.values()))


def test_the_limit_and_cool_off_come_from_the_environment(tmp_path):
    names = ("AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME")
    var = {"LESIONSITE_VAR_DIR": str(tmp_path)}
    default = json.loads(settings_in_a_fresh_process(var, *names).stdout)
    told_env = {**var, "LOGIN_FAILURE_LIMIT": "3", "LOGIN_LOCKOUT_MINUTES": "60"}
    told = json.loads(settings_in_a_fresh_process(told_env, *names).stdout)

    assert (default["AXES_FAILURE_LIMIT"], default["AXES_COOLOFF_TIME"]) == ("5", "0:15:00")
    assert (told["AXES_FAILURE_LIMIT"], told["AXES_COOLOFF_TIME"]) == ("3", "1:00:00")
