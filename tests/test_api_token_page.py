"""The account page lists a user's API tokens with their last use, issues one (its key shown once) and
revokes one or all; the admin shows tokens without keys or digests."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from classifier.tokens import ApiToken
from tests.signing_in import verified_login
from tests.test_pages import accessibility_problems

pytestmark = pytest.mark.django_db

PAGE = "/account/tokens/"


def works(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/images/").status_code == 200


def test_the_page_lists_my_tokens_with_their_last_use_and_no_one_elses(owner_web, owner, outsider):
    used, used_key = ApiToken.objects.issue(owner, name="ward laptop")
    ApiToken.objects.filter(pk=used.pk).update(last_used=timezone.make_aware(dt.datetime(2026, 11, 30, 9, 41)))
    _, unused_key = ApiToken.objects.issue(owner, name="scanner PC")
    ApiToken.objects.issue(outsider, name="bob's tablet")

    response = owner_web.get(PAGE)

    html = response.content.decode()
    assert response.status_code == 200 and accessibility_problems(html) == []
    rows = re.findall(r'<tr data-token="\d+">(.*?)</tr>', html, re.S)
    assert len(rows) == 2
    laptop = next(row for row in rows if "ward laptop" in row)
    assert "2026-11-30 09:41" in laptop
    assert "never" in next(row for row in rows if "scanner PC" in row)
    assert "tablet" not in html
    assert used_key not in html and unused_key not in html
    assert not any(token.digest in html for token in ApiToken.objects.all())


def test_the_header_links_to_the_page(owner_web):
    assert f'href="{PAGE}"' in owner_web.get("/upload/").content.decode()


def test_it_issues_a_token_whose_key_is_shown_only_once(owner_web, owner):
    response = owner_web.post(PAGE, {"change": "issue", "name": "clinic scanner"})

    html = response.content.decode()
    assert response.status_code == 200 and accessibility_problems(html) == []
    key = re.search(r'id="issued-key"[^>]* value="([0-9a-f]{64})"', html).group(1)
    assert "Copy it now: it is shown only this once." in html
    assert works(key)
    assert ApiToken.objects.get(user=owner).name == "clinic scanner"
    assert key not in owner_web.get(PAGE).content.decode()


def test_a_name_that_is_too_long_is_refused_and_nothing_is_issued(owner_web):
    response = owner_web.post(PAGE, {"change": "issue", "name": "x" * 101})

    assert response.status_code == 400
    assert "What it is for: Ensure this value has at most 100 characters" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_revokes_one_token_and_keeps_the_others(owner_web, owner):
    laptop, laptop_key = ApiToken.objects.issue(owner, name="ward laptop")
    _, scanner_key = ApiToken.objects.issue(owner, name="scanner PC")

    response = owner_web.post(PAGE, {"change": "revoke", "token": laptop.pk}, follow=True)

    assert response.redirect_chain == [(PAGE, 302)]
    assert "Revoked ward laptop" in response.content.decode()
    assert not works(laptop_key) and works(scanner_key)


def test_another_users_token_cannot_be_revoked_here(owner_web, outsider):
    theirs, key = ApiToken.objects.issue(outsider)

    assert owner_web.post(PAGE, {"change": "revoke", "token": theirs.pk}).status_code == 404
    assert owner_web.post(PAGE, {"change": "revoke", "token": "not-a-number"}).status_code == 404
    assert works(key)


def test_it_revokes_all_my_tokens(owner_web, owner, outsider):
    keys = [ApiToken.objects.issue(owner)[1] for _ in range(3)]
    _, bobs = ApiToken.objects.issue(outsider)

    response = owner_web.post(PAGE, {"change": "revoke-all"}, follow=True)

    assert "Revoked all your API tokens (3)." in response.content.decode()
    assert not any(works(key) for key in keys) and works(bobs)
    assert "You have no API tokens." in response.content.decode()


def test_an_unknown_change_is_refused_saying_so(owner_web, owner):
    ApiToken.objects.issue(owner)

    response = owner_web.post(PAGE, {"change": "delete-everything"})

    assert response.status_code == 400 and "Nothing was changed" in response.content.decode()
    assert ApiToken.objects.count() == 1


def test_an_expired_token_is_marked_so(owner_web, owner):
    ApiToken.objects.issue(owner, name="old laptop")
    ApiToken.objects.update(expiry=timezone.now() - dt.timedelta(hours=1))

    row = re.search(r'<tr data-token="\d+">(.*?)</tr>', owner_web.get(PAGE).content.decode(), re.S).group(1)

    assert "expired" in row


def test_the_page_needs_a_login(client):
    response = client.get(PAGE)

    assert response.status_code == 302 and response["Location"] == f"/login/?next={PAGE}"


def test_the_admin_lists_tokens_without_their_keys_or_digests(client, django_user_model, owner):
    admin = django_user_model.objects.create_superuser("root", password="root-password-12")
    token, key = ApiToken.objects.issue(owner, name="ward laptop")
    verified_login(client, admin)

    listing = client.get("/admin/classifier/apitoken/").content.decode()
    detail = client.get(f"/admin/classifier/apitoken/{token.pk}/change/").content.decode()

    assert "ward laptop" in listing and "ward laptop" in detail
    for page in (listing, detail):
        assert key not in page and token.digest not in page and token.token_key not in page
    assert client.get("/admin/classifier/apitoken/add/").status_code == 403
    # DRF's authtoken (which showed every key) and knox's own admin (digests) are gone.
    assert client.get("/admin/authtoken/tokenproxy/").status_code == 404
    assert client.get("/admin/knox/authtoken/").status_code == 404


def test_an_administrator_revokes_a_token_by_deleting_it(client, django_user_model, owner):
    admin = django_user_model.objects.create_superuser("root", password="root-password-12")
    token, key = ApiToken.objects.issue(owner)
    verified_login(client, admin)

    response = client.post(f"/admin/classifier/apitoken/{token.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302 and not works(key)
