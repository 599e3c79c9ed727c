"""The patients list, the patient and lesion pages and their forms, with their people: a member of the
clinic, a member of another clinic (404, as for a missing id), anonymous (the login page); and the one
audit event each request writes."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.http import HttpRequest
from django.utils import timezone

from classifier.audit import AuditEvent
from classifier.models import Lesion, LesionImage, Patient, Prediction
from tests.factories import make_image, make_lesion, make_patient, make_visit
from tests.images import upload
from tests.signing_in import verified_login, verify_session

pytestmark = pytest.mark.django_db


def day(n: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime(2026, 1, 1, 12) + dt.timedelta(days=n))


@pytest.fixture
def patient(clinic):
    return make_patient(clinic, "MRN-0042", year_of_birth=1961, sex="female", skin_type="II")


@pytest.fixture
def lesion(patient, owner):
    mole = make_lesion(patient, site="back", side="left", label="L1, left scapula", map_view="back", map_x=0.4,
                       map_y=0.3)  # fmt: skip
    make_visit(owner, mole, day(0), score=0.20, top_class="nv")
    make_visit(owner, mole, day(90), score=0.55, top_class="mel")
    return mole


def page_urls(patient, lesion) -> list[str]:
    return [
        f"/patients/{patient.pk}/",
        f"/patients/{patient.pk}/report.pdf",
        f"/lesions/{lesion.pk}/",
        f"/lesions/{lesion.pk}/report.pdf",
    ]


def posts(patient, lesion) -> list[tuple[str, dict]]:
    return [
        (f"/patients/{patient.pk}/", {"reference": "X"}),
        (f"/patients/{patient.pk}/lesions/", {"site": "face"}),
        (f"/lesions/{lesion.pk}/", {"site": "face", "status": "monitored"}),
        (f"/lesions/{lesion.pk}/visits/", {"files": [upload("visit.png", seed=5)]}),
        (f"/lesions/{lesion.pk}/label/", {"diagnosis": "mel", "method": "histo"}),
    ]


def missing(url: str, patient, lesion) -> str:
    return url.replace(f"/{patient.pk}/", "/999999/").replace(f"/{lesion.pk}/", "/999999/")


def events() -> list[tuple[str, str, int | None]]:
    return [(e.action, e.object_type, e.object_id) for e in AuditEvent.objects.order_by("id")]


# --- Who sees what


def test_a_member_of_the_clinic_opens_every_page(owner_web, patient, lesion):
    for url in ["/patients/", *page_urls(patient, lesion)]:
        assert owner_web.get(url).status_code == 200, url


def test_a_member_of_another_clinic_gets_404_as_for_a_missing_id(client, outsider, patient, lesion):
    client.force_login(outsider)
    for url in page_urls(patient, lesion):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.content == client.get(missing(url, patient, lesion)).content, url
    for url, data in posts(patient, lesion):
        assert client.post(url, data).status_code == 404, url
    assert "MRN-0042" not in client.get("/patients/").content.decode()
    assert LesionImage.objects.count() == 2 and Lesion.objects.count() == 1
    assert Patient.objects.get(pk=patient.pk).reference == "MRN-0042"


def test_an_anonymous_client_is_sent_to_log_in(client, patient, lesion):
    for url in ["/patients/", *page_urls(patient, lesion)]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    for url, data in [*posts(patient, lesion), ("/patients/", {"reference": "X"})]:
        response = client.post(url, data)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    assert Patient.objects.count() == 1 and LesionImage.objects.count() == 2


def test_each_page_writes_one_audit_event_naming_what_was_read(owner_web, patient, lesion):
    assert not AuditEvent.objects.exists()  # the factories write none
    expected = [
        ("/patients/", ("listed_patients", "", None)),
        (f"/patients/{patient.pk}/", ("viewed_patient", "patient", patient.pk)),
        (f"/patients/{patient.pk}/report.pdf", ("exported_pdf", "patient", patient.pk)),
        (f"/lesions/{lesion.pk}/", ("viewed_lesion", "lesion", lesion.pk)),
        (f"/lesions/{lesion.pk}/report.pdf", ("exported_pdf", "lesion", lesion.pk)),
    ]
    for url, event in expected:
        before = AuditEvent.objects.count()
        owner_web.get(url)
        assert AuditEvent.objects.count() == before + 1, url
        assert events()[-1] == event, url
    assert set(AuditEvent.objects.exclude(action="listed_patients").values_list("patient_id", flat=True)) == {
        patient.pk
    }


def test_the_header_links_the_patients_list_and_marks_it_current(owner_web, patient, lesion):
    page = owner_web.get(f"/lesions/{lesion.pk}/").content.decode()
    assert 'href="/patients/" aria-current="page">Patients</a>' in page
    assert 'href="/patients/" aria-current' not in owner_web.get("/history/").content.decode()


# --- The patients list


def test_the_list_searches_by_reference_and_marks_who_needs_a_look(owner_web, owner, clinic, patient, lesion):
    quiet = make_patient(clinic, "MRN-0100")
    make_visit(owner, make_lesion(quiet), day(5), score=0.1)

    page = owner_web.get("/patients/").content.decode()
    found = owner_web.get("/patients/?q=0100").content.decode()

    assert "2 patients." in page
    row = page[page.index(f'data-patient="{patient.pk}"') :].split("</tr>")[0]
    assert '<td role="cell" data-label="Lesions">1</td>' in row
    assert "2026-04-01" in row  # the latest taken_at (day 90)
    assert "⚠ Yes" in row and "L1, left scapula</a> (suspicious and changed)" in row
    quiet_row = page[page.index(f'data-patient="{quiet.pk}"') :].split("</tr>")[0]
    assert "⚠" not in quiet_row
    assert "MRN-0100" in found and "MRN-0042" not in found


def test_the_list_is_paginated(owner_web, clinic):
    for n in range(27):
        make_patient(clinic, f"P-{n:03d}")
    first = owner_web.get("/patients/").content.decode()
    second = owner_web.get("/patients/?page=2").content.decode()
    assert "P-024" in first and "P-025" not in first
    assert "P-025" in second and "Page 2 of 2" in second


def test_a_new_patient_is_added_to_the_clinic_and_audited(owner_web, owner, clinic):
    response = owner_web.post(
        "/patients/",
        {"reference": "  MRN-7 ", "year_of_birth": "1980", "sex": "male", "skin_type": "IV", "note": "referred"},
    )

    patient = Patient.objects.get(reference="MRN-7")
    assert response.status_code == 302 and response["Location"] == f"/patients/{patient.pk}/"
    assert (patient.clinic, patient.created_by, patient.skin_type) == (clinic, owner, "IV")
    assert events()[-1] == ("created_patient", "patient", patient.pk)


def test_a_refused_new_patient_names_the_field(owner_web, patient):
    future = timezone.localdate().year + 1
    response = owner_web.post("/patients/", {"reference": "MRN-0042", "year_of_birth": str(future)})

    page = response.content.decode()
    assert response.status_code == 400
    assert "Reference</a>: The clinic already has a patient with the reference &#x27;MRN-0042&#x27;." in page
    assert f"Year of birth</a>: {future} is in the future" in page
    assert Patient.objects.count() == 1


def test_a_reference_another_clinic_uses_is_free_here(owner_web, other_clinic):
    make_patient(other_clinic, "MRN-1")
    assert owner_web.post("/patients/", {"reference": "MRN-1"}).status_code == 302
    assert Patient.objects.filter(reference="MRN-1").count() == 2


# --- The patient page


def test_the_patient_page_shows_the_map_the_lesions_and_their_latest_reading(owner_web, owner, patient, lesion):
    pending = make_lesion(patient, site="chest", side="right", label="L2", map_view="front", map_x=0.4, map_y=0.3)
    make_visit(owner, pending, day(10), score=None)

    page = owner_web.get(f"/patients/{patient.pk}/").content.decode()

    assert 'class="pin pin-suspicious" aria-label="L1, left scapula: suspicious for malignancy"' in page
    assert 'class="pin pin-pending" aria-label="L2: reading pending"' in page
    latest = lesion.images.order_by("-taken_at").first()
    assert f'src="/images/{latest.pk}/thumbnail/" alt="Latest picture of L1, left scapula, taken 2026-04-01"' in page
    assert "⚠ Suspicious · Melanoma, 70 %" in page
    assert 'data-flag="score-rose"' in page and 'data-flag="top-class-changed"' in page
    assert f'data-pending-prediction="{pending.images.get().latest_prediction_id}"' in page
    assert f'action="/lesions/{lesion.pk}/visits/"' in page and 'id="visit-' in page
    assert f'href="/patients/{patient.pk}/report.pdf"' in page
    assert "Export record" not in page  # a clinician, not a manager


def test_a_manager_gets_the_export_and_erase_links(client, manager, patient):
    verified_login(client, manager)
    page = client.get(f"/patients/{patient.pk}/").content.decode()
    assert f'href="/patients/{patient.pk}/export/"' in page and f'href="/patients/{patient.pk}/erase/"' in page


def test_the_details_are_changed_and_audited(owner_web, patient):
    response = owner_web.post(f"/patients/{patient.pk}/", {"reference": "MRN-0042", "year_of_birth": "1962",
                                                          "sex": "female", "skin_type": "III", "note": ""})  # fmt: skip
    patient.refresh_from_db()
    assert response.status_code == 302 and (patient.year_of_birth, patient.skin_type) == (1962, "III")
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.detail) == ("changed_patient", {"fields": ["skin_type", "year_of_birth"]})


def test_refused_details_keep_the_stored_ones_and_name_the_field(owner_web, patient):
    response = owner_web.post(f"/patients/{patient.pk}/", {"reference": "", "skin_type": "VII"})

    page = response.content.decode()
    assert response.status_code == 400
    assert "Reference</a>: Give the patient a reference" in page
    assert "Skin type (Fitzpatrick)</a>: Select a valid choice." in page
    assert "<h1>Patient MRN-0042</h1>" in page
    assert events()[-1] == ("viewed_patient", "patient", patient.pk)


def test_a_lesion_placed_by_a_click_keeps_the_point(owner_web, patient):
    response = owner_web.post(f"/patients/{patient.pk}/lesions/", {"label": "L5", "site": "back", "side": "right",
                                                                   "map_view": "back", "map_x": "0.6123",
                                                                   "map_y": "0.3"})  # fmt: skip
    lesion = Lesion.objects.get(label="L5")
    assert response.status_code == 302 and response["Location"] == f"/patients/{patient.pk}/#lesion-{lesion.pk}"
    assert (lesion.patient, lesion.map_view, lesion.map_x, lesion.map_y) == (patient, "back", 0.6123, 0.3)
    assert events()[-1] == ("created_lesion", "lesion", lesion.pk)


def test_a_lesion_chosen_from_the_lists_is_drawn_at_the_sites_default_point(owner_web, patient):
    from classifier.lib.bodymap import default_point

    owner_web.post(f"/patients/{patient.pk}/lesions/", {"label": "", "site": "chest", "side": "left",
                                                        "map_view": "", "map_x": "", "map_y": ""})  # fmt: skip
    owner_web.post(f"/patients/{patient.pk}/lesions/", {"site": "unknown"})

    chest, unknown = Lesion.objects.order_by("id")
    point = default_point("chest", "left")
    assert (chest.map_view, chest.map_x, chest.map_y) == (point.view, point.x, point.y)
    assert (unknown.map_view, unknown.map_x, unknown.map_y) == ("", None, None)  # the map has no place for it


def test_a_side_the_site_cannot_have_is_refused_naming_the_field(owner_web, patient):
    response = owner_web.post(f"/patients/{patient.pk}/lesions/", {"site": "hand", "side": "midline"})
    page = response.content.decode()
    assert response.status_code == 400
    assert "Side</a>: A lesion on the hand is on the left or right side, not the midline." in page
    assert not Lesion.objects.exists()


def test_half_a_position_is_refused(owner_web, patient):
    response = owner_web.post(f"/patients/{patient.pk}/lesions/", {"site": "back", "map_view": "back", "map_x": "0.5"})
    assert response.status_code == 400 and not Lesion.objects.exists()


# --- Uploading a visit


def test_a_visit_is_uploaded_to_the_lesion_and_queued_as_any_upload(owner_web, owner, patient, lesion):
    response = owner_web.post(f"/lesions/{lesion.pk}/visits/", {
        "files": [upload("a.png", seed=31), upload("b.png", seed=32)], "taken_at": "2026-05-02",
        "next": f"/patients/{patient.pk}/#lesion-{lesion.pk}"})  # fmt: skip

    assert response.status_code == 302 and response["Location"] == f"/patients/{patient.pk}/#lesion-{lesion.pk}"
    new = list(lesion.images.filter(original_filename__in=["a.png", "b.png"]))
    assert len(new) == 2
    assert all(timezone.localtime(image.taken_at).date() == dt.date(2026, 5, 2) for image in new)
    assert all(image.latest_prediction.status == Prediction.Status.QUEUED for image in new)
    assert all(image.clinic_id == patient.clinic_id and image.owner == owner for image in new)
    uploaded = AuditEvent.objects.filter(action="uploaded")
    assert sorted(uploaded.values_list("object_id", flat=True)) == sorted(image.pk for image in new)


def test_a_refused_picture_stores_nothing_and_says_why(owner_web, lesion):
    response = owner_web.post(f"/lesions/{lesion.pk}/visits/", {
        "files": [upload("fine.png", seed=3), upload("notes.png", data=b"not an image")]}, follow=True)  # fmt: skip

    assert lesion.images.count() == 2
    assert "Nothing was uploaded: notes.png" in response.content.decode()


def test_a_visit_taken_in_the_future_is_refused(owner_web, lesion):
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    data = {"files": [upload(seed=4)], "taken_at": tomorrow.isoformat()}
    response = owner_web.post(f"/lesions/{lesion.pk}/visits/", data, follow=True)
    assert "Taken on: The date is in the future." in response.content.decode()
    assert lesion.images.count() == 2


def test_an_outside_next_address_is_not_followed(owner_web, lesion):
    response = owner_web.post(f"/lesions/{lesion.pk}/visits/", {"files": [upload(seed=6)],
                                                                "next": "https://evil.example/"})  # fmt: skip
    assert response["Location"] == f"/lesions/{lesion.pk}/"


# --- The lesion page


def test_the_lesion_page_shows_the_timeline_chart_flags_and_comparison(owner_web, lesion):
    first, second = lesion.images.order_by("taken_at")

    page = owner_web.get(f"/lesions/{lesion.pk}/").content.decode()

    timeline = page[page.index('<table class="list timeline') : page.index("</table>")]
    assert timeline.index(f'data-visit="{first.pk}"') < timeline.index(f'data-visit="{second.pk}"')
    assert f'href="/predictions/{second.latest_prediction_id}/"' in timeline
    assert "Malignancy score rose from 0.20 to 0.55 (threshold for a flag: +0.10)." in timeline
    assert "Most likely class changed from Melanocytic nevus (nv) to Melanoma (mel)." in timeline
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page and 'class="score-chart"' in page
    assert "not a measured size" in page
    assert f'<option value="{first.pk}" selected>' in page and f'<option value="{second.pk}" selected>' in page
    assert page.count("data-compare-picture") == 2
    assert f'src="/images/{first.pk}/file/"' in page


def test_the_thresholds_come_from_the_settings(owner_web, lesion, settings):
    settings.CHANGE_SCORE_RISE = 0.5
    page = owner_web.get(f"/lesions/{lesion.pk}/").content.decode()
    assert "Malignancy score rose" not in page and "by more than 0.50" in page


def test_the_comparison_takes_any_two_of_the_lesions_pictures(owner_web, owner, lesion):
    third = make_visit(owner, lesion, day(200))
    first = lesion.images.order_by("taken_at").first()
    stranger = make_image(owner)  # the clinic's, but not this lesion's

    chosen = owner_web.get(f"/lesions/{lesion.pk}/?a={third.pk}&b={first.pk}").content.decode()
    foreign = owner_web.get(f"/lesions/{lesion.pk}/?a={stranger.pk}&b={first.pk}").content.decode()

    assert f'src="/images/{first.pk}/file/"' in chosen and f'src="/images/{third.pk}/file/"' in chosen
    assert f"/images/{stranger.pk}/file/" not in foreign


def test_a_lesion_with_one_picture_has_no_comparison(owner_web, owner, patient):
    single = make_lesion(patient)
    make_visit(owner, single, day(0))
    page = owner_web.get(f"/lesions/{single.pk}/").content.decode()
    assert "Two pictures are needed for a comparison." in page and "data-compare-picture" not in page


def test_the_lesions_details_are_changed_and_a_new_site_moves_its_pin(owner_web, lesion):
    from classifier.lib.bodymap import default_point

    data = {"label": "L1b", "site": "chest", "side": "left", "status": "excised", "note": "sent to histology",
            "map_view": "back", "map_x": "0.4", "map_y": "0.3"}  # fmt: skip
    response = owner_web.post(f"/lesions/{lesion.pk}/", data)
    lesion.refresh_from_db()
    point = default_point("chest", "left")
    assert response.status_code == 302
    assert (lesion.label, lesion.status, lesion.note) == ("L1b", "excised", "sent to histology")
    assert (lesion.map_view, lesion.map_x, lesion.map_y) == (point.view, point.x, point.y)
    assert events()[-1][0] == "changed_lesion"


def test_a_label_change_keeps_the_lesions_point(owner_web, lesion):
    owner_web.post(f"/lesions/{lesion.pk}/", {"label": "renamed", "site": "back", "side": "left",
                                              "status": "monitored", "map_view": "back", "map_x": "0.4",
                                              "map_y": "0.3"})  # fmt: skip
    lesion.refresh_from_db()
    assert (lesion.label, lesion.map_view, lesion.map_x, lesion.map_y) == ("renamed", "back", 0.4, 0.3)


def test_an_admin_labels_the_lesion_and_so_every_picture_of_it(client, admin_user, clinic, lesion):
    clinic.add_member(admin_user, "clinician")
    verified_login(client, admin_user)
    assert f'action="/lesions/{lesion.pk}/label/"' in client.get(f"/lesions/{lesion.pk}/").content.decode()

    response = client.post(f"/lesions/{lesion.pk}/label/", {"diagnosis": "mel", "method": "histo", "note": ""})

    lesion.refresh_from_db()
    assert response.status_code == 302 and (lesion.diagnosis, lesion.diagnosis_method) == ("mel", "histo")
    assert set(lesion.images.values_list("diagnosis", flat=True)) == {"mel"}
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.object_type, event.detail) == ("labelled", "lesion", {"diagnosis": "mel", "images": 2})


def test_an_admin_of_another_clinic_cannot_label_the_clinics_lesion(client, admin_user, other_clinic, lesion):
    other_clinic.add_member(admin_user, "clinician")
    verified_login(client, admin_user)
    assert client.post(f"/lesions/{lesion.pk}/label/", {"diagnosis": "mel", "method": "histo"}).status_code == 404
    lesion.refresh_from_db()
    assert lesion.diagnosis == ""


def test_a_member_with_the_label_permission_labels_without_being_staff(client, teammate, lesion):
    from django.contrib.auth.models import Permission

    teammate.user_permissions.add(Permission.objects.get(codename="change_lesionimage"))
    client.force_login(teammate)
    assert f'action="/lesions/{lesion.pk}/label/"' in client.get(f"/lesions/{lesion.pk}/").content.decode()

    assert client.post(f"/lesions/{lesion.pk}/label/", {"diagnosis": "bcc", "method": "histo"}).status_code == 302
    lesion.refresh_from_db()
    assert lesion.diagnosis == "bcc"


def test_staff_of_the_clinic_without_the_label_permission_cannot_label(client, teammate, lesion):
    teammate.is_staff = True
    teammate.save()
    verified_login(client, teammate)
    assert "/label/" not in client.get(f"/lesions/{lesion.pk}/").content.decode()
    assert client.post(f"/lesions/{lesion.pk}/label/", {"diagnosis": "mel", "method": "histo"}).status_code == 404
    lesion.refresh_from_db()
    assert lesion.diagnosis == ""


def test_a_clinician_cannot_label_a_lesion(owner_web, lesion):
    assert "/label/" not in owner_web.get(f"/lesions/{lesion.pk}/").content.decode()
    assert owner_web.post(f"/lesions/{lesion.pk}/label/", {"diagnosis": "mel", "method": "histo"}).status_code == 404
    lesion.refresh_from_db()
    assert lesion.diagnosis == ""


def test_a_user_in_no_clinic_sees_no_patients_and_cannot_add_one(client, django_user_model, patient):
    loner = django_user_model.objects.create_user("lou", password="lou-password-1")
    client.force_login(loner)

    assert "MRN-0042" not in client.get("/patients/").content.decode()
    response = client.post("/patients/", {"reference": "MRN-9"})

    assert response.status_code == 400 and "not a member of any clinic" in response.content.decode()
    assert client.get(f"/patients/{patient.pk}/").status_code == 404
    assert not Patient.objects.filter(reference="MRN-9").exists()


def test_a_reference_taken_by_another_request_meanwhile_is_the_forms_error(owner_web, clinic, monkeypatch):
    from classifier.forms import PatientForm

    # The other request saves its patient after this form checked the reference, before this one saves.
    monkeypatch.setattr(PatientForm, "clean_reference", lambda form: form.cleaned_data["reference"])
    make_patient(clinic, "MRN-5")

    response = owner_web.post("/patients/", {"reference": "MRN-5"})

    assert response.status_code == 400
    assert "Reference</a>: The clinic already has a patient with this reference." in response.content.decode()
    assert Patient.objects.filter(reference="MRN-5").count() == 1
    assert not AuditEvent.objects.filter(action="created_patient").exists()


def test_the_demo_patient_opens_on_every_page(client, django_user_model):
    from django.core.management import call_command

    call_command("create_demo_users", stdout=io.StringIO())
    patient = Patient.objects.get(reference="DEMO-001")
    lesion = patient.lesions.get()
    client.login(request=HttpRequest(), username="manager", password="lesionsite-manager")  # axes needs the request
    verify_session(client, django_user_model.objects.get(username="manager"))  # a manager gives a code too

    urls = ["/patients/", f"/patients/{patient.pk}/", f"/lesions/{lesion.pk}/", f"/patients/{patient.pk}/report.pdf",
            f"/lesions/{lesion.pk}/report.pdf", f"/patients/{patient.pk}/export/"]  # fmt: skip
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert client.get(f"/lesions/{lesion.pk}/").content.decode().count("data-pending-prediction=") == 3
