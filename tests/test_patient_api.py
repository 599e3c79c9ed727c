"""/api/v1/patients/, /patients/{id}/lesions/, /lesions/{id}/ (with its timeline) and /audit-events/:
a member of the clinic, a member of another clinic, anonymous; bad input is a 400 naming the field."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from classifier.models import Lesion, Patient
from tests.conftest import token_client
from tests.factories import make_image, make_lesion, make_patient, make_prediction

pytestmark = pytest.mark.django_db
PATIENTS = "/api/v1/patients/"


@pytest.fixture
def patient(clinic):
    return make_patient(clinic, "MRN-0042", year_of_birth=1961, sex="female", skin_type="II")


@pytest.fixture
def lesion(patient):
    return make_lesion(patient, label="L3, left scapula", side="left", map_view="back", map_x=0.4, map_y=0.3)


def urls(patient, lesion) -> list[str]:
    return [f"{PATIENTS}{patient.pk}/", f"{PATIENTS}{patient.pk}/lesions/", f"/api/v1/lesions/{lesion.pk}/"]


# --- The three people


def test_a_member_reads_the_patient_its_lesions_and_the_lesion(owner_api, teammate, patient, lesion):
    for api in (owner_api, token_client(teammate)):
        for url in urls(patient, lesion):
            assert api.get(url).status_code == 200, url
    body = owner_api.get(f"{PATIENTS}{patient.pk}/").json()
    assert (body["reference"], body["year_of_birth"], body["skin_type"], body["lesion_count"]) == (
        "MRN-0042",
        1961,
        "II",
        1,
    )


def test_a_member_of_another_clinic_gets_404_as_for_a_missing_id(outsider_api, patient, lesion):
    for url in urls(patient, lesion):
        response = outsider_api.get(url)
        missing = outsider_api.get(url.replace(f"/{patient.pk}/", "/99999/").replace(f"/{lesion.pk}/", "/99999/"))
        assert response.status_code == 404 and response.json() == missing.json(), url
    assert outsider_api.get(PATIENTS).json()["count"] == 0
    assert outsider_api.patch(f"/api/v1/lesions/{lesion.pk}/", {"status": "excised"}, format="json").status_code == 404
    assert outsider_api.patch(f"{PATIENTS}{patient.pk}/", {"note": "x"}, format="json").status_code == 404
    response = outsider_api.post(f"{PATIENTS}{patient.pk}/lesions/", {"site": "back"}, format="json")
    assert response.status_code == 404 and patient.lesions.count() == 1


def test_an_anonymous_client_gets_401(anonymous_api, patient, lesion):
    for url in [PATIENTS, "/api/v1/audit-events/", *urls(patient, lesion)]:
        assert anonymous_api.get(url).status_code == 401, url
    assert anonymous_api.post(PATIENTS, {"reference": "X"}, format="json").status_code == 401


# --- Patients


def test_a_clinician_creates_a_patient_in_their_clinic(owner_api, owner, clinic):
    response = owner_api.post(PATIENTS, {"reference": "  MRN-7 ", "sex": "male", "skin_type": "IV"}, format="json")

    assert response.status_code == 201, response.content
    patient = Patient.objects.get(pk=response.json()["id"])
    assert (patient.clinic, patient.reference, patient.created_by) == (clinic, "MRN-7", owner)
    assert response.json()["lesions_url"].endswith(f"/api/v1/patients/{patient.pk}/lesions/")


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"reference": "x" * 65}, "reference", "no more than 64 characters"),
        ({"reference": "   "}, "reference", "blank"),
        ({"reference": "MRN-0042"}, "reference", "already has a patient"),
        ({"reference": "MRN-8", "year_of_birth": timezone.localdate().year + 1}, "year_of_birth", "future"),
        ({"reference": "MRN-8", "skin_type": "VII"}, "skin_type", "not a valid choice"),
        ({"reference": "MRN-8", "sex": "other"}, "sex", "not a valid choice"),
        ({}, "reference", "required"),
    ],
)
def test_bad_patient_input_is_a_400_naming_the_field(owner_api, patient, body, field, says):
    response = owner_api.post(PATIENTS, body, format="json")

    assert response.status_code == 400
    assert field in response.json() and says in " ".join(response.json()[field]), response.json()
    assert Patient.objects.count() == 1


def test_the_same_reference_may_exist_in_another_clinic(outsider_api, patient):
    assert outsider_api.post(PATIENTS, {"reference": "MRN-0042"}, format="json").status_code == 201


def test_a_patient_is_updated_and_a_rename_onto_another_reference_is_refused(owner_api, patient, clinic):
    other = make_patient(clinic, "MRN-0043")

    assert owner_api.patch(f"{PATIENTS}{patient.pk}/", {"note": "Family history"}, format="json").status_code == 200
    assert owner_api.patch(f"{PATIENTS}{patient.pk}/", {"reference": "MRN-0042"}, format="json").status_code == 200
    clash = owner_api.patch(f"{PATIENTS}{other.pk}/", {"reference": "MRN-0042"}, format="json")

    assert clash.status_code == 400 and "reference" in clash.json()
    patient.refresh_from_db()
    assert patient.note == "Family history"
    full = {"reference": "MRN-0042", "year_of_birth": 1962, "sex": "female", "skin_type": "III", "note": ""}
    assert owner_api.put(f"{PATIENTS}{patient.pk}/", full, format="json").json()["year_of_birth"] == 1962


def test_patients_are_searched_by_reference(owner_api, clinic, patient):
    make_patient(clinic, "OTHER-1")

    found = owner_api.get(f"{PATIENTS}?search=mrn-00").json()

    assert [p["reference"] for p in found["results"]] == ["MRN-0042"]
    assert owner_api.get(f"{PATIENTS}?serch=MRN").status_code == 400  # a misspelt filter is not ignored


def test_patients_cannot_be_deleted_here(owner_api, patient):
    assert owner_api.delete(f"{PATIENTS}{patient.pk}/").status_code == 405
    assert Patient.objects.filter(pk=patient.pk).exists()


# --- Lesions


def test_a_lesion_is_added_to_a_patient_and_listed(owner_api, owner, patient, lesion):
    body = {"label": "L4, right shin", "site": "lower extremity", "side": "right", "map_view": "front",
            "map_x": 0.62, "map_y": 0.85}  # fmt: skip
    response = owner_api.post(f"{PATIENTS}{patient.pk}/lesions/", body, format="json")

    assert response.status_code == 201, response.content
    created = Lesion.objects.get(pk=response.json()["id"])
    assert (created.patient, created.site, created.map_x, created.created_by) == (
        patient,
        "lower extremity",
        0.62,
        owner,
    )
    listed = owner_api.get(f"{PATIENTS}{patient.pk}/lesions/").json()
    assert [item["label"] for item in listed["results"]] == ["L3, left scapula", "L4, right shin"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"site": "elbow"}, "site"),
        ({}, "site"),
        ({"site": "back", "side": "up"}, "side"),
        ({"site": "back", "status": "gone"}, "status"),
        ({"site": "back", "map_view": "side", "map_x": 0.5, "map_y": 0.5}, "map_view"),
        ({"site": "back", "map_view": "back", "map_x": 1.5, "map_y": 0.5}, "map_x"),
        ({"site": "back", "map_view": "back", "map_x": 0.5}, "map_y"),
        ({"site": "back", "map_x": 0.5, "map_y": 0.5}, "map_view"),
    ],
)
def test_bad_lesion_input_is_a_400_naming_the_field(owner_api, patient, body, field):
    response = owner_api.post(f"{PATIENTS}{patient.pk}/lesions/", body, format="json")

    assert response.status_code == 400 and field in response.json(), response.json()
    assert patient.lesions.count() == 0


def test_a_lesion_is_updated_but_its_diagnosis_is_the_labellers(owner_api, lesion):
    response = owner_api.patch(
        f"/api/v1/lesions/{lesion.pk}/", {"status": "excised", "note": "sent to histology", "diagnosis": "mel"},
        format="json",
    )  # fmt: skip

    assert response.status_code == 200
    lesion.refresh_from_db()
    assert (lesion.status, lesion.note, lesion.diagnosis) == ("excised", "sent to histology", "")
    half = owner_api.patch(f"/api/v1/lesions/{lesion.pk}/", {"map_view": ""}, format="json")
    assert half.status_code == 400 and "map_view" in half.json()


def test_a_lesions_timeline_is_its_images_by_date_taken_with_their_latest_readings(owner_api, owner, lesion):
    now = timezone.now()
    late = make_prediction(owner, status="done", top_class="mel", image=make_image(owner, lesion=lesion, taken_at=now))
    early_image = make_image(owner, lesion=lesion, taken_at=now - datetime.timedelta(days=180))
    make_prediction(owner, status="done", top_class="nv", image=early_image)
    make_image(owner)  # a one-off upload: not in the timeline

    body = owner_api.get(f"/api/v1/lesions/{lesion.pk}/").json()

    assert [item["id"] for item in body["timeline"]] == [early_image.pk, late.image_id]
    assert [item["prediction"]["top_class"] for item in body["timeline"]] == ["nv", "mel"]
    assert body["image_count"] == 2 and body["patient"] == lesion.patient_id


# --- The audit log


def test_a_manager_reads_the_clinics_audit_events_and_filters_them(client, manager, owner_api, patient):
    owner_api.get(f"{PATIENTS}{patient.pk}/")
    api = token_client(manager)

    body = api.get(f"/api/v1/audit-events/?user=alice&patient={patient.pk}").json()

    assert [(e["user"], e["action"], e["object_type"], e["patient_id"]) for e in body["results"]] == [
        ("alice", "viewed_patient", "patient", patient.pk)
    ]
    assert api.get("/api/v1/audit-events/?action=nonsense").status_code == 400


def test_a_clinician_and_another_clinics_member_may_not_read_the_audit_events(owner_api, outsider_api):
    response = owner_api.get("/api/v1/audit-events/")

    assert response.status_code == 403 and "managers" in response.json()["detail"]
    assert outsider_api.get("/api/v1/audit-events/").status_code == 403


def test_audit_events_cannot_be_changed_through_the_api(manager):
    api = token_client(manager)
    api.get("/api/v1/audit-events/")
    event_id = api.get("/api/v1/audit-events/").json()["results"][0]["id"]

    assert api.post("/api/v1/audit-events/", {}, format="json").status_code == 405
    assert api.delete(f"/api/v1/audit-events/{event_id}/").status_code == 404  # no detail route at all


def test_the_schema_documents_the_new_endpoints_with_examples(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    for path in ("/api/v1/patients/", "/api/v1/patients/{id}/lesions/", "/api/v1/lesions/{id}/",
                 "/api/v1/audit-events/"):  # fmt: skip
        assert path in schema["paths"], path
    create = schema["paths"]["/api/v1/patients/"]["post"]
    assert "examples" in create["requestBody"]["content"]["application/json"]
    assert "X-Clinic" in [p["name"] for p in create["parameters"]]
