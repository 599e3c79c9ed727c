"""GET /images/<id>/file/ and /thumbnail/: a browser's session or a REST client's token, and nobody else."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from classifier.tokens import ApiToken
from tests.conftest import token_client
from tests.factories import make_image

pytestmark = pytest.mark.django_db

KINDS = [("file", "image/png"), ("thumbnail", "image/webp")]


@pytest.fixture
def image(owner):
    return make_image(owner)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize(("kind", "content_type"), KINDS)
def test_a_rest_client_downloads_its_image_with_its_token(owner_api, image, kind, content_type):
    response = owner_api.get(f"/images/{image.pk}/{kind}/")

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert body(response)[:4] in (b"\x89PNG", b"RIFF")
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("kind", "content_type"), KINDS)
def test_the_file_urls_the_api_gives_work_with_the_same_token(owner_api, image, kind, content_type):
    entry = owner_api.get(f"/api/v1/images/{image.pk}/").json()

    response = owner_api.get(entry["thumbnail_url" if kind == "thumbnail" else "file_url"])

    assert response.status_code == 200 and response["Content-Type"] == content_type


@pytest.mark.parametrize("kind", ["file", "thumbnail"])
def test_a_teammates_token_downloads_the_clinics_image(teammate, image, kind):
    assert token_client(teammate).get(f"/images/{image.pk}/{kind}/").status_code == 200


@pytest.mark.parametrize("kind", ["file", "thumbnail"])
def test_another_clinics_token_gets_404_as_for_a_missing_image(outsider_api, image, kind):
    response = outsider_api.get(f"/images/{image.pk}/{kind}/")
    missing = outsider_api.get(f"/images/{image.pk + 1000}/{kind}/")

    assert response.status_code == missing.status_code == 404
    assert response.content == missing.content


@pytest.mark.parametrize("kind", ["file", "thumbnail"])
def test_an_admins_token_gets_404_for_a_clinic_they_are_not_in(admin_user, image, kind):
    # Platform admins see every picture in the Django admin (for labelling), not on the site.
    assert token_client(admin_user).get(f"/images/{image.pk}/{kind}/").status_code == 404


@pytest.mark.parametrize(("kind", "content_type"), KINDS)
def test_the_admin_serves_any_clinics_image_to_staff_only(admin_client, client, owner, image, kind, content_type):
    url = f"/admin/classifier/lesionimage/{image.pk}/{kind}/"

    response = admin_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == content_type
    client.force_login(owner)
    assert client.get(url).status_code == 302  # to the admin's login: not staff


@pytest.mark.parametrize("kind", ["file", "thumbnail"])
def test_a_token_may_name_another_of_its_clinics(owner, other_clinic, kind):
    other_clinic.add_member(owner, "clinician")
    elsewhere = make_image(owner, clinic=other_clinic)
    api = token_client(owner)

    assert api.get(f"/images/{elsewhere.pk}/{kind}/").status_code == 404  # not the current clinic
    assert api.get(f"/images/{elsewhere.pk}/{kind}/", HTTP_X_CLINIC=str(other_clinic.pk)).status_code == 200
    assert api.get(f"/images/{elsewhere.pk}/{kind}/?clinic={other_clinic.pk}").status_code == 200


@pytest.mark.parametrize("kind", ["file", "thumbnail"])
@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Token 0000000000000000000000000000000000000000", "Invalid token."),
        ("Token", "Invalid token header. No credentials provided."),
        ("token a b", "Invalid token header. Token string should not contain spaces."),
    ],
)
def test_a_bad_token_gets_401_not_the_login_page(client, image, kind, header, detail):
    response = client.get(f"/images/{image.pk}/{kind}/", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response["WWW-Authenticate"] == "Token"


def test_a_revoked_token_stops_downloading_at_once(owner_api, image):
    assert owner_api.get(f"/images/{image.pk}/file/").status_code == 200
    assert owner_api.delete("/api/v1/auth/token/revoke/").status_code == 204

    assert owner_api.get(f"/images/{image.pk}/file/").status_code == 401
    assert owner_api.get(f"/images/{image.pk}/thumbnail/").status_code == 401


def test_an_inactive_users_token_gets_401(owner, owner_api, image):
    owner.is_active = False
    owner.save()

    response = owner_api.get(f"/images/{image.pk}/file/")

    assert response.status_code == 401 and response.json() == {"detail": "User inactive or deleted."}


@pytest.mark.parametrize("kind", ["file", "thumbnail"])
def test_a_browser_without_a_session_is_sent_to_the_login_page(client, image, kind):
    response = client.get(f"/images/{image.pk}/{kind}/")

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next=/images/{image.pk}/{kind}/"


def test_credentials_of_another_scheme_leave_the_session_to_decide(client, owner, image):
    # e.g. a reverse proxy's Basic credentials that the browser sends with every request
    assert client.get(f"/images/{image.pk}/file/", HTTP_AUTHORIZATION="Basic YWxpY2U6eA==").status_code == 302
    client.force_login(owner)
    assert client.get(f"/images/{image.pk}/file/", HTTP_AUTHORIZATION="Basic YWxpY2U6eA==").status_code == 200


@pytest.mark.parametrize("kind", ["file", "thumbnail"])
def test_no_cache_keeps_it_not_even_the_browsers(owner_web, image, kind):
    response = owner_web.get(f"/images/{image.pk}/{kind}/")

    assert response["Cache-Control"] == "private, no-store"


@pytest.mark.django_db(transaction=True)
def test_a_token_download_over_http(live_server, owner, image):
    _, key = ApiToken.objects.issue(owner)
    url = f"{live_server.url}/images/{image.pk}/file/"

    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Token {key}"})) as got:
        assert got.status == 200 and got.headers["Content-Type"] == "image/png"
        assert got.read().startswith(b"\x89PNG")

    wrong = urllib.request.Request(url, headers={"Authorization": "Token not-a-token"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong)
    assert refused.value.code == 401
