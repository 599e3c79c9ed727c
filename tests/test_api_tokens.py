"""API tokens expire, are stored as digests only, one per device, and are revoked one by one, all at
once, or by a password change."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from classifier.tokens import ApiToken
from tests.factories import make_image
from tests.test_settings_env import settings_in_a_fresh_process

pytestmark = pytest.mark.django_db

WEEK = dt.timedelta(hours=24 * 7)  # API_TOKEN_TTL_HOURS's default


def get_token(username="alice", password="alice-password-1", **extra) -> dict:
    response = APIClient().post("/api/v1/auth/token/", {"username": username, "password": password, **extra})
    assert response.status_code == 200, response.content
    return response.json()


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def works(key: str) -> bool:
    return api(key).get("/api/v1/images/").status_code == 200


def test_each_post_issues_another_working_token_with_its_expiry_and_name(owner):
    before = timezone.now()
    laptop = get_token(name="ward laptop")
    scanner = get_token(name="scanner PC")

    assert laptop["token"] != scanner["token"]
    assert works(laptop["token"]) and works(scanner["token"])
    assert laptop["name"] == "ward laptop"
    expiry = dt.datetime.fromisoformat(laptop["expiry"])
    assert before + WEEK <= expiry <= timezone.now() + WEEK
    assert sorted(ApiToken.objects.filter(user=owner).values_list("name", flat=True)) == ["scanner PC", "ward laptop"]


def test_the_database_holds_a_digest_never_the_key(owner):
    key = get_token()["token"]

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM classifier_apitoken")
        (row,) = cursor.fetchall()
    assert not any(key in str(value) for value in row)
    assert ApiToken.objects.get().digest == hashlib.sha512(key.encode()).hexdigest()


def test_an_expired_token_gets_401_saying_it_expired_every_time(owner):
    key = get_token()["token"]
    ApiToken.objects.update(expiry=timezone.now() - dt.timedelta(seconds=1))

    for _ in range(2):  # kept, so the client is told again rather than "Invalid token."
        response = api(key).get("/api/v1/images/")
        assert response.status_code == 401
        assert response.json()["detail"].startswith("Token expired at ")
        assert "POST your username and password to /api/v1/auth/token/" in response.json()["detail"]
    assert response["WWW-Authenticate"] == "Token"
    # The image files, which take a token outside DRF, say the same.
    picture = api(key).get(f"/images/{make_image(owner).pk}/file/")
    assert picture.status_code == 401 and picture.json()["detail"].startswith("Token expired at ")


def test_an_expired_token_is_deleted_when_its_user_gets_a_new_one(owner, outsider):
    old = get_token()["token"]
    ApiToken.objects.update(expiry=timezone.now() - dt.timedelta(seconds=1))
    others = get_token("bob", "bob-password-1")["token"]
    ApiToken.objects.filter(user=outsider).update(expiry=timezone.now() - dt.timedelta(seconds=1))

    new = get_token()["token"]

    assert works(new)
    assert api(old).get("/api/v1/images/").json() == {"detail": "Invalid token."}
    assert ApiToken.objects.filter(user=outsider).count() == 1  # another user's expired token is theirs to see
    assert api(others).get("/api/v1/images/").json()["detail"].startswith("Token expired")


def test_a_token_lives_as_long_as_the_setting_says(owner, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": dt.timedelta(hours=2)}

    expiry = dt.datetime.fromisoformat(get_token()["expiry"])

    assert expiry - timezone.now() <= dt.timedelta(hours=2)
    assert expiry - timezone.now() > dt.timedelta(hours=2) - dt.timedelta(minutes=1)


def test_the_lifetime_is_read_from_api_token_ttl_hours(tmp_path):
    var = {"LESIONSITE_VAR_DIR": str(tmp_path)}
    default = settings_in_a_fresh_process(var, "REST_KNOX").stdout
    told = settings_in_a_fresh_process({**var, "API_TOKEN_TTL_HOURS": "12"}, "REST_KNOX").stdout
    refused = settings_in_a_fresh_process({**var, "API_TOKEN_TTL_HOURS": "0"}, "REST_KNOX")

    assert "'TOKEN_TTL': datetime.timedelta(days=7)" in json.loads(default)["REST_KNOX"]
    assert "'TOKEN_TTL': datetime.timedelta(seconds=43200)" in json.loads(told)["REST_KNOX"]
    assert refused.returncode != 0 and "API_TOKEN_TTL_HOURS=0 must be at least 1" in refused.stderr


def test_a_name_that_is_too_long_is_refused_naming_the_field(owner):
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1", "name": "x" * 101}
    )

    assert response.status_code == 400
    assert response.json() == {"name": ["Ensure this field has no more than 100 characters."]}
    assert not ApiToken.objects.exists()


def test_a_stale_token_in_the_header_does_not_stop_the_client_getting_a_new_one(owner):
    client = api("0" * 64)

    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"})

    assert response.status_code == 200 and works(response.json()["token"])


def test_revoking_a_token_stops_only_that_one(owner):
    laptop, scanner = get_token()["token"], get_token()["token"]

    assert api(laptop).delete("/api/v1/auth/token/revoke/").status_code == 204

    assert api(laptop).get("/api/v1/images/").json() == {"detail": "Invalid token."}
    assert works(scanner)


def test_revoke_all_stops_every_token_of_the_user_and_no_one_elses(owner, outsider):
    laptop, scanner = get_token()["token"], get_token()["token"]
    bobs = get_token("bob", "bob-password-1")["token"]

    assert api(laptop).delete("/api/v1/auth/token/revoke-all/").status_code == 204

    assert not works(laptop) and not works(scanner)
    assert works(bobs)


def test_revoke_needs_the_token_it_revokes_not_a_session(owner):
    get_token()
    client = APIClient()
    client.force_login(owner)

    assert client.delete("/api/v1/auth/token/revoke/").status_code == 401
    assert ApiToken.objects.count() == 1


def test_a_password_change_on_the_password_page_revokes_every_token(owner, owner_web):
    laptop, scanner = get_token()["token"], get_token()["token"]

    new = "a-long-new-passphrase"
    response = owner_web.post(
        "/password/", {"old_password": "alice-password-1", "new_password1": new, "new_password2": new}
    )

    assert response.status_code == 302
    assert api(laptop).get("/api/v1/images/").status_code == 401 and not works(scanner)
    assert works(get_token(password=new)["token"])


def test_setting_a_password_through_the_reset_link_revokes_every_token(client, owner, mailoutbox):
    key = get_token()["token"]
    owner.email = "alice@example.org"
    owner.save()
    assert works(key)  # saving the user for anything else keeps the tokens
    call_command("send_password_reset", "alice", stdout=io.StringIO())
    link = re.search(r"http://127\.0\.0\.1:8000(/reset/\S+/)", mailoutbox[0].body).group(1)
    set_url = client.get(link, follow=True).redirect_chain[-1][0]

    new = "a-long-new-passphrase"
    assert client.post(set_url, {"new_password1": new, "new_password2": new}).status_code == 302

    assert not works(key)


def test_a_password_set_anywhere_else_revokes_every_token(owner):
    key = get_token()["token"]

    owner.set_password("set-by-an-administrator")
    owner.save()

    assert not works(key)


def test_the_last_use_is_recorded_at_most_once_a_minute(owner):
    key = get_token()["token"]
    assert ApiToken.objects.get().last_used is None

    works(key)
    first = ApiToken.objects.get().last_used
    assert first is not None and timezone.now() - first < dt.timedelta(seconds=5)

    thirty_seconds_ago = timezone.now() - dt.timedelta(seconds=30)
    ApiToken.objects.update(last_used=thirty_seconds_ago)
    works(key)
    assert ApiToken.objects.get().last_used == thirty_seconds_ago

    ApiToken.objects.update(last_used=timezone.now() - dt.timedelta(minutes=2))
    works(key)
    assert timezone.now() - ApiToken.objects.get().last_used < dt.timedelta(seconds=5)
