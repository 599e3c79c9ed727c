"""GET /api/v1/lesions/{id}/ gives the change flags between the timeline's consecutive visits, as the pages do."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.factories import make_lesion, make_patient, make_visit

pytestmark = pytest.mark.django_db


def day(n: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime(2026, 1, 1, 12) + dt.timedelta(days=n))


def test_the_lesion_gives_its_flags_and_notes_by_image(owner_api, owner, clinic, settings):
    settings.CHANGE_SCORE_RISE = 0.10
    lesion = make_lesion(make_patient(clinic))
    first = make_visit(owner, lesion, day(0), score=0.2)
    pending = make_visit(owner, lesion, day(30), score=None)
    third = make_visit(owner, lesion, day(60), score=0.5)

    body = owner_api.get(f"/api/v1/lesions/{lesion.pk}/").json()

    assert [image["id"] for image in body["timeline"]] == [first.pk, pending.pk, third.pk]
    (flag,) = body["changes"]["flags"]
    assert (flag["kind"], flag["image"], flag["compared_with"]) == ("score-rose", third.pk, first.pk)
    assert flag["sentence"].startswith("Malignancy score rose from 0.20 to 0.50")
    assert [(note["kind"], note["image"]) for note in body["changes"]["notes"]] == [("no-reading", pending.pk)]

    settings.CHANGE_SCORE_RISE = 0.5
    assert owner_api.get(f"/api/v1/lesions/{lesion.pk}/").json()["changes"]["flags"] == []
