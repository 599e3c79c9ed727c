"""One definition of an image's latest prediction (LesionImage.latest_prediction), kept as predictions
come and go, and lists that preload it."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from classifier.models import LesionImage, ModelVersion, Prediction
from tests.factories import make_image, make_prediction

pytestmark = pytest.mark.django_db


def test_the_newest_prediction_is_the_latest_whatever_its_status(owner):
    image = make_image(owner)
    done = make_prediction(owner, image=image, status="done", top_class="nv")
    rerun = make_prediction(owner, image=image, status="queued")

    image.refresh_from_db()
    assert image.latest_prediction == rerun
    rerun.delete()  # the newest gone, the one before it is the latest again
    image.refresh_from_db()
    assert image.latest_prediction == done


def test_a_rerun_becomes_each_images_latest_in_two_statements(owner, django_capture_on_commit_callbacks):
    version = ModelVersion.objects.create(name="v", directory="v", card={}, malignant_threshold=0.3, is_active=True)
    images = [make_prediction(owner, status="done", top_class="nv").image for _ in range(3)]

    with django_capture_on_commit_callbacks(), CaptureQueriesContext(connection) as queries:
        created = LesionImage.objects.filter(pk__in=[i.pk for i in images]).rerun()

    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    assert len(writes) == 2
    assert {p.model_version for p in created} == {version}
    assert sorted(LesionImage.objects.values_list("latest_prediction", flat=True)) == sorted(p.pk for p in created)


def test_an_older_prediction_made_later_does_not_replace_the_newest(owner):
    image = make_image(owner)
    newest = make_prediction(owner, image=image)
    make_prediction(owner, image=image, created_at=timezone.now() - datetime.timedelta(days=1))

    image.refresh_from_db()
    assert image.latest_prediction == newest


def test_the_images_api_shows_a_page_of_50_with_a_fixed_number_of_queries(owner_api, owner):
    version = ModelVersion.objects.create(name="v", directory="v", card={}, malignant_threshold=0.3)

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = owner_api.get("/api/v1/images/?page_size=50")
        assert response.status_code == 200
        return len(queries.captured_queries)

    page_queries()  # the token's first use is written once (at most once a minute), not on every page
    for _ in range(5):
        make_prediction(owner, status="done", top_class="mel", model_version=version)
    few = page_queries()
    for _ in range(45):
        make_prediction(owner, status="done", top_class="nv", model_version=version)
    many = page_queries()

    assert many == few  # no query per row
    body = owner_api.get("/api/v1/images/?page_size=50").json()
    assert len(body["results"]) == 50
    assert {row["prediction"]["model_version"] for row in body["results"]} == {"v"}


def test_the_history_page_shows_a_page_with_a_fixed_number_of_queries(owner_web, owner):
    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert owner_web.get("/history/").status_code == 200
        return len(queries.captured_queries)

    for _ in range(3):
        make_prediction(owner, status="done", top_class="nv")
    few = page_queries()
    for _ in range(17):
        make_prediction(owner, status="done", top_class="bkl")

    assert page_queries() == few
    assert Prediction.objects.count() == 20
