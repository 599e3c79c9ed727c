"""Three roles: the owner sees their images, another clinician and an anonymous client see nothing."""

from __future__ import annotations

import pytest

from classifier.models import UploadBatch
from tests.factories import make_image, make_prediction

pytestmark = pytest.mark.django_db


@pytest.fixture
def owned(owner):
    return make_prediction(owner, status="done", top_class="mel")


def api_urls(prediction):
    return [
        f"/api/v1/images/{prediction.image_id}/",
        f"/api/v1/predictions/{prediction.pk}/",
    ]


def page_urls(prediction):
    return [
        f"/predictions/{prediction.pk}/",
        f"/images/{prediction.image_id}/file/",
    ]


def test_the_owner_reads_their_image_and_prediction(owner_api, owner_web, owned):
    for url in api_urls(owned):
        assert owner_api.get(url).status_code == 200, url
    for url in page_urls(owned):
        assert owner_web.get(url).status_code == 200, url


def test_another_clinician_gets_404_for_the_owners_objects(colleague_api, client, colleague, owned):
    client.force_login(colleague)
    for url in api_urls(owned):
        assert colleague_api.get(url).status_code == 404, url
    for url in page_urls(owned):
        assert client.get(url).status_code == 404, url


def test_another_clinician_lists_nothing_of_the_owners(colleague_api, client, colleague, owner, owned):
    batch = UploadBatch.objects.create(owner=owner)
    make_prediction(owner, image=make_image(owner, batch=batch))

    assert colleague_api.get("/api/v1/images/").json()["count"] == 0
    assert colleague_api.get("/api/v1/predictions/").json()["count"] == 0
    assert colleague_api.get(f"/api/v1/predictions/?batch={batch.pk}").json()["count"] == 0
    client.force_login(colleague)
    assert client.get(f"/batches/{batch.pk}/").status_code == 404


def test_another_clinicians_history_shows_nothing_of_the_owners(client, colleague, owned):
    client.force_login(colleague)
    response = client.get("/history/")
    assert response.status_code == 200
    assert str(owned.image) not in response.content.decode()


def test_an_anonymous_client_is_refused_everywhere(anonymous_api, client, owned):
    for url in [*api_urls(owned), "/api/v1/images/", "/api/v1/predictions/"]:
        assert anonymous_api.get(url).status_code == 401, url
    assert anonymous_api.post("/api/v1/images/", {}, format="multipart").status_code == 401
    for url in [*page_urls(owned), "/upload/", "/history/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_an_admin_sees_every_clinicians_prediction(admin_client, owned):
    assert admin_client.get(f"/api/v1/predictions/{owned.pk}/").status_code == 200
    assert admin_client.get(f"/images/{owned.image_id}/file/").status_code == 200


def test_uploaded_files_are_not_served_from_a_public_media_url(client, owned):
    assert client.get("/media/" + owned.image.file.name).status_code == 404
