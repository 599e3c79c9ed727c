"""Page sessions end after SESSION_IDLE_TIMEOUT_MINUTES without a request, and when the browser closes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from tests.test_settings_env import settings_in_a_fresh_process

pytestmark = pytest.mark.django_db

IDLE = dt.timedelta(minutes=30)  # SESSION_IDLE_TIMEOUT_MINUTES's default


def logged_in(client):
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302
    return client


def idle_for(minutes: float) -> None:
    """As if the last request was that long ago: the session's expiry is IDLE after its last save."""
    Session.objects.update(expire_date=timezone.now() + IDLE - dt.timedelta(minutes=minutes))


def test_a_session_idle_longer_than_the_timeout_is_logged_out(client, owner):
    logged_in(client)
    idle_for(31)

    response = client.get("/upload/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_an_active_session_is_kept_and_each_request_moves_its_expiry(client, owner):
    logged_in(client)
    for _ in range(3):  # 29 idle minutes, three times over: 87 minutes in all
        idle_for(29)
        assert client.get("/upload/").status_code == 200

    expiry = Session.objects.get().expire_date
    assert abs(expiry - (timezone.now() + IDLE)) < dt.timedelta(seconds=30)


def test_the_cookie_ends_with_the_browser(client, owner):
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    cookie = response.cookies["sessionid"]
    assert cookie["max-age"] == "" and cookie["expires"] == ""


def test_the_idle_timeout_comes_from_the_environment(tmp_path):
    var = {"LESIONSITE_VAR_DIR": str(tmp_path)}
    default = json.loads(settings_in_a_fresh_process(var, "SESSION_COOKIE_AGE").stdout)
    told = json.loads(
        settings_in_a_fresh_process({**var, "SESSION_IDLE_TIMEOUT_MINUTES": "10"}, "SESSION_COOKIE_AGE").stdout
    )
    assert (default["SESSION_COOKIE_AGE"], told["SESSION_COOKIE_AGE"]) == ("1800", "600")
