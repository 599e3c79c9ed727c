"""Clinicians change their own password; an administrator sends a one-time link to set one; weak ones are refused."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from classifier.management.commands.create_demo_users import DEMO_ACCOUNTS
from tests.test_pages import accessibility_problems

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-new-passphrase"


def can_log_in(client, username, password) -> bool:
    return client.post("/login/", {"username": username, "password": password}).status_code == 302


def change(client, old, new):
    return client.post("/password/", {"old_password": old, "new_password1": new, "new_password2": new})


def test_the_header_links_to_the_change_page(owner_web):
    assert 'href="/password/"' in owner_web.get("/upload/").content.decode()


def test_a_clinician_changes_their_password_and_stays_signed_in(owner_web, owner, client):
    page = owner_web.get("/password/")
    assert page.status_code == 200 and accessibility_problems(page.content.decode()) == []

    response = change(owner_web, "alice-password-1", NEW_PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/password/done/"
    assert "Password changed" in owner_web.get("/password/done/").content.decode()
    assert owner_web.get("/upload/").status_code == 200
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD) and not owner.check_password("alice-password-1")


def test_the_change_needs_the_current_password(owner_web, owner):
    response = change(owner_web, "not-my-password", NEW_PASSWORD)

    assert response.status_code == 200 and "Your old password was entered incorrectly" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password("alice-password-1")


def test_the_change_page_needs_a_login(client):
    response = client.get("/password/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize(
    "weak", ["Summer2024", "lesionsite", "98765432109", "password1234", "123456789012", "alice-alice"]
)
def test_a_weak_password_is_refused(owner_web, owner, weak):
    response = change(owner_web, "alice-password-1", weak)

    assert response.status_code == 200 and "Nothing was saved" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password("alice-password-1")


def test_the_policy_names_what_is_wrong():
    user = get_user_model()(username="alice", email="alice@example.org")
    for weak, reason in [("Summer2024", "at least 12 characters"), ("98765432109", "entirely numeric"),
                         ("123456789012", "entirely numeric"), ("password1234", "too common"),
                         ("alice@example.org", "too similar")]:  # fmt: skip
        with pytest.raises(ValidationError, match=reason):
            validate_password(weak, user)


def test_the_demo_accounts_passwords_meet_the_policy():
    call_command("create_demo_users", stdout=io.StringIO())
    for account in DEMO_ACCOUNTS:
        validate_password(account.password, get_user_model().objects.get(username=account.username))


def send_reset(username) -> str:
    out = io.StringIO()
    call_command("send_password_reset", username, stdout=out)
    return out.getvalue()


def test_an_administrator_sends_a_one_time_link_that_sets_the_password(client, owner, mailoutbox):
    owner.email = "alice@example.org"
    owner.save()

    assert "alice@example.org" in send_reset("alice")

    (mail,) = mailoutbox
    assert mail.to == ["alice@example.org"]
    link = re.search(r"http://127\.0\.0\.1:8000(/reset/\S+/)", mail.body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a password" in form.content.decode() and 'name="new_password1"' in form.content.decode()
    set_url = form.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/reset/done/"
    assert can_log_in(client, "alice", NEW_PASSWORD)

    client.logout()
    again = client.get(link, follow=True).content.decode()
    assert "This link is no longer valid" in again and 'name="new_password1"' not in again


def test_the_link_refuses_a_weak_password(client, owner, mailoutbox):
    owner.email = "alice@example.org"
    owner.save()
    send_reset("alice")
    link = re.search(r"http://127\.0\.0\.1:8000(/reset/\S+/)", mailoutbox[0].body).group(1)
    set_url = client.get(link, follow=True).redirect_chain[-1][0]

    response = client.post(set_url, {"new_password1": "Summer2024", "new_password2": "Summer2024"})

    assert response.status_code == 200 and "at least 12 characters" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password("alice-password-1")


def test_the_command_says_why_it_cannot_send(owner, mailoutbox):
    with pytest.raises(CommandError, match="no e-mail address"):
        send_reset("alice")
    with pytest.raises(CommandError, match="No user 'nobody'"):
        send_reset("nobody")
    assert mailoutbox == []
