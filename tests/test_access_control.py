"""The access rules for images, predictions and batches, with three people: a member of the clinic
(the owner, or their teammate: the clinic shares its records), a member of another clinic, and an
anonymous client. Anyone outside the clinic gets 404 with the body a missing id gets."""

from __future__ import annotations

import pytest

from tests.conftest import token_client
from tests.factories import make_batch, make_image, make_prediction

pytestmark = pytest.mark.django_db


@pytest.fixture
def owned(owner):
    return make_prediction(owner, status="done", top_class="mel", image=make_image(owner, original_filename="mole.png"))


def api_urls(prediction):
    return [
        f"/api/v1/images/{prediction.image_id}/",
        f"/api/v1/predictions/{prediction.pk}/",
    ]


def page_urls(prediction):
    return [
        f"/predictions/{prediction.pk}/",
        f"/images/{prediction.image_id}/file/",
        f"/images/{prediction.image_id}/thumbnail/",
        f"/images/{prediction.image_id}/note/",
    ]


def missing(url: str, prediction) -> str:
    """The same URL with ids no row has."""
    return url.replace(f"/{prediction.image_id}/", "/999999/").replace(f"/{prediction.pk}/", "/999999/")


def test_the_owner_reads_their_image_and_prediction(owner_api, owner_web, owned):
    for url in api_urls(owned):
        assert owner_api.get(url).status_code == 200, url
    for url in page_urls(owned):
        assert owner_web.get(url).status_code == 200, url


def test_a_teammate_reads_the_clinics_image_and_prediction(client, teammate, owned):
    api = token_client(teammate)
    for url in api_urls(owned):
        assert api.get(url).status_code == 200, url
    client.force_login(teammate)
    for url in page_urls(owned):
        assert client.get(url).status_code == 200, url


def test_a_member_of_another_clinic_gets_404_as_for_a_missing_id(outsider_api, client, outsider, owned):
    client.force_login(outsider)
    for url in api_urls(owned):
        response = outsider_api.get(url)
        assert response.status_code == 404, url
        assert response.json() == outsider_api.get(missing(url, owned)).json(), url
    for url in page_urls(owned):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.content == client.get(missing(url, owned)).content, url


def test_a_member_of_another_clinic_lists_nothing_of_the_clinics(outsider_api, client, outsider, owner, owned):
    batch = make_batch(owner)
    make_prediction(owner, image=make_image(owner, batch=batch))

    assert outsider_api.get("/api/v1/images/").json()["count"] == 0
    assert outsider_api.get("/api/v1/predictions/").json()["count"] == 0
    assert outsider_api.get(f"/api/v1/predictions/?batch={batch.pk}").json()["count"] == 0
    client.force_login(outsider)
    assert client.get(f"/batches/{batch.pk}/").status_code == 404


def test_a_teammate_lists_and_opens_the_clinics_batch(client, teammate, owner, owned):
    batch = make_batch(owner)
    make_prediction(owner, image=make_image(owner, batch=batch))

    api = token_client(teammate)
    assert api.get("/api/v1/images/").json()["count"] == 2
    assert api.get(f"/api/v1/predictions/?batch={batch.pk}").json()["count"] == 1
    client.force_login(teammate)
    assert client.get(f"/batches/{batch.pk}/").status_code == 200


def test_the_history_and_its_csv_are_the_clinics(client, teammate, outsider, owned):
    client.force_login(teammate)
    assert str(owned.image) in client.get("/history/").content.decode()
    assert str(owned.image) in b"".join(client.get("/history/export.csv").streaming_content).decode()
    client.force_login(outsider)
    assert str(owned.image) not in client.get("/history/").content.decode()
    assert str(owned.image) not in b"".join(client.get("/history/export.csv").streaming_content).decode()


def test_an_anonymous_client_is_refused_everywhere(anonymous_api, client, owned):
    for url in [*api_urls(owned), "/api/v1/images/", "/api/v1/predictions/"]:
        assert anonymous_api.get(url).status_code == 401, url
    assert anonymous_api.post("/api/v1/images/", {}, format="multipart").status_code == 401
    for url in [*page_urls(owned), "/upload/", "/history/", "/history/export.csv", f"/batches/{owned.pk}/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_an_admin_outside_the_clinic_sees_none_of_it_on_the_site(admin_client, owned):
    # Platform admins label every clinic's images in the Django admin; the site shows them their own clinic's.
    assert admin_client.get(f"/api/v1/predictions/{owned.pk}/").status_code == 404
    assert admin_client.get(f"/predictions/{owned.pk}/").status_code == 404
    assert admin_client.get(f"/admin/classifier/lesionimage/{owned.image_id}/change/").status_code == 200


def test_a_user_in_no_clinic_sees_nothing_and_cannot_upload(client, django_user_model, owned):
    from tests.images import upload

    loner = django_user_model.objects.create_user("loner", password="loner-password-1")
    api = token_client(loner)
    assert api.get("/api/v1/images/").json()["count"] == 0
    assert api.get(api_urls(owned)[0]).status_code == 404
    response = api.post("/api/v1/images/", {"file": [upload()]}, format="multipart")
    assert response.status_code == 403 and response.json()["code"] == "no_clinic"
    client.force_login(loner)
    assert "Not a member of any clinic" in client.get("/history/").content.decode()


def test_naming_a_clinic_you_are_not_in_is_a_404(owner_api, other_clinic, owned):
    assert owner_api.get("/api/v1/images/", HTTP_X_CLINIC=str(other_clinic.pk)).status_code == 404
    assert owner_api.get(f"/api/v1/images/?clinic={other_clinic.pk}").status_code == 404
    assert owner_api.get("/api/v1/images/?clinic=not-a-number").status_code == 404


def test_uploaded_files_are_not_served_from_a_public_media_url(client, owned):
    assert client.get("/media/" + owned.image.file.name).status_code == 404
