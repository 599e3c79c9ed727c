"""Every upload form says plainly not to name files after patients: the names are stored and shown."""

from __future__ import annotations

import pytest

from classifier.forms import NAME_WARNING
from tests.factories import make_lesion, make_patient

pytestmark = pytest.mark.django_db


def test_the_upload_page_warns_against_naming_files_after_patients(owner_web):
    page = owner_web.get("/upload/").content.decode()

    assert "Do not name files after patients: file names are stored and shown with the pictures." in page
    assert page.count(NAME_WARNING) == 1


def test_the_lesion_and_patient_pages_upload_forms_warn_too(owner_web, clinic):
    patient = make_patient(clinic)
    lesion = make_lesion(patient)

    assert NAME_WARNING in owner_web.get(f"/lesions/{lesion.pk}/").content.decode()
    assert NAME_WARNING in owner_web.get(f"/patients/{patient.pk}/").content.decode()


def test_the_api_documents_the_warning(owner_api):
    schema = owner_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    assert "never name a file after a patient" in str(schema["components"]["schemas"])
