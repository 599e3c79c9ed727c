"""The audit log: every read of a clinic's records and every change is one appended row, which
nothing in the app changes or deletes, except the retention purge."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from classifier.audit import Action, AuditEvent, AuditLogIsAppendOnly, audit, client_address
from tests.conftest import token_client
from tests.factories import make_batch, make_image, make_lesion, make_patient, make_prediction

pytestmark = pytest.mark.django_db


def events(**filters) -> list[tuple[str, str, str, int | None]]:
    return [
        (e.username, e.action, e.object_type, e.object_id) for e in AuditEvent.objects.filter(**filters).order_by("id")
    ]


def request_from(user, address="10.0.0.7", **meta):
    request = RequestFactory().get("/", REMOTE_ADDR=address, **meta)
    request.user = user
    return request


# --- What an event holds


def test_an_event_is_one_insert_naming_who_when_where_what_and_which_patient(owner, clinic):
    patient = make_patient(clinic, "MRN-SECRET-42")
    lesion = make_lesion(patient)
    image = make_image(owner, lesion=lesion, original_filename="Jane Doe left arm.png")
    request = request_from(owner)

    with CaptureQueriesContext(connection) as queries:
        event = audit(request, Action.VIEWED_IMAGE, image)

    assert len(queries) == 1 and queries[0]["sql"].startswith("INSERT")
    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.username, event.user, event.clinic, event.action) == ("alice", owner, clinic, "viewed_image")
    assert (event.object_type, event.object_id, event.patient_id) == ("image", image.pk, patient.pk)
    assert event.address == "10.0.0.7" and event.at <= timezone.now()
    # Its text survives an erasure without holding patient data: no reference, no file name.
    assert event.object_repr == f"image #{image.pk}"
    assert "SECRET" not in str(event) and "Jane" not in str(event)


def test_the_client_address_is_remote_addr_unless_a_trusted_proxy_says_otherwise(owner, settings):
    forwarded = {"HTTP_X_FORWARDED_FOR": "203.0.113.9, 198.51.100.4"}
    settings.TRUST_X_FORWARDED_FOR = False
    assert client_address(request_from(owner, "10.0.0.1", **forwarded)) == "10.0.0.1"
    settings.TRUST_X_FORWARDED_FOR = True
    # The last address is the one our proxy saw; the first could be anything the client sent.
    assert client_address(request_from(owner, "10.0.0.1", **forwarded)) == "198.51.100.4"
    assert client_address(request_from(owner, "10.0.0.1", HTTP_X_FORWARDED_FOR="not-an-ip")) == "10.0.0.1"


# --- Append-only


def test_an_event_cannot_be_changed_or_deleted_through_the_orm(owner):
    event = audit(request_from(owner), Action.VIEWED_HISTORY)

    event.action = Action.ERASED
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(action=Action.ERASED)
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "viewed_history"


def test_the_admin_shows_events_read_only(admin_client, owner):
    event = audit(request_from(owner), Action.VIEWED_HISTORY)

    assert admin_client.get("/admin/classifier/auditevent/").status_code == 200
    page = admin_client.get(f"/admin/classifier/auditevent/{event.pk}/change/").content.decode()
    assert "viewed_history" in page or "Viewed the history" in page
    assert 'name="_save"' not in page
    assert admin_client.get("/admin/classifier/auditevent/add/").status_code == 403
    assert admin_client.post(f"/admin/classifier/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_deleting_a_user_keeps_their_events_and_name(owner):
    audit(request_from(owner), Action.VIEWED_HISTORY)

    owner.delete()

    (event,) = AuditEvent.objects.all()
    assert event.user is None and event.username == "alice"


def test_the_purge_deletes_only_events_older_than_the_retention(owner, settings, capsys):
    settings.AUDIT_RETENTION_DAYS = 30
    old, recent = (audit(request_from(owner), Action.VIEWED_HISTORY) for _ in range(2))
    AuditEvent._base_manager.filter(pk=old.pk).update(at=timezone.now() - datetime.timedelta(days=31))

    call_command("purge_audit_events", "--dry-run")
    assert "1 audit events are older than 30 days; none deleted" in capsys.readouterr().out
    assert AuditEvent.objects.count() == 2
    call_command("purge_audit_events")

    assert "Deleted 1 audit events older than 30 days." in capsys.readouterr().out
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [recent.pk]


# --- Every kind of access writes one


def test_every_page_read_of_the_clinics_records_is_audited(owner_web, owner, clinic):
    patient = make_patient(clinic)
    batch = make_batch(owner)
    prediction = make_prediction(
        owner, status="done", image=make_image(owner, batch=batch, lesion=make_lesion(patient))
    )
    image = prediction.image

    owner_web.get(f"/predictions/{prediction.pk}/")
    owner_web.get(f"/batches/{batch.pk}/")
    owner_web.get("/history/")
    owner_web.get(f"/history/?patient={patient.reference}")
    b"".join(owner_web.get("/history/export.csv").streaming_content)
    b"".join(owner_web.get(f"/images/{image.pk}/file/").streaming_content)
    b"".join(owner_web.get(f"/images/{image.pk}/thumbnail/").streaming_content)
    owner_web.post(f"/images/{image.pk}/note/", {"clinician_note": "recheck in 3 months"})

    assert events() == [
        ("alice", "viewed_image", "image", image.pk),
        ("alice", "viewed_batch", "batch", batch.pk),
        ("alice", "viewed_history", "", None),
        ("alice", "viewed_history", "patient", patient.pk),
        ("alice", "exported_csv", "", None),
        ("alice", "downloaded_file", "image", image.pk),
        ("alice", "downloaded_file", "image", image.pk),
        ("alice", "changed_note", "image", image.pk),
    ]
    assert set(AuditEvent.objects.values_list("clinic", flat=True)) == {clinic.pk}
    assert AuditEvent.objects.filter(object_type="image").values_list("patient_id", flat=True).distinct().get() == (
        patient.pk
    )


def test_every_api_read_of_the_clinics_records_is_audited(owner_api, owner, clinic):
    patient = make_patient(clinic)
    lesion = make_lesion(patient)
    prediction = make_prediction(owner, image=make_image(owner, lesion=lesion))

    owner_api.get("/api/v1/images/")
    owner_api.get(f"/api/v1/images/{prediction.image_id}/")
    owner_api.get("/api/v1/predictions/")
    owner_api.get(f"/api/v1/predictions/{prediction.pk}/")
    owner_api.get("/api/v1/patients/")
    owner_api.get(f"/api/v1/patients/{patient.pk}/")
    owner_api.get(f"/api/v1/patients/{patient.pk}/lesions/")
    owner_api.get(f"/api/v1/lesions/{lesion.pk}/")
    b"".join(owner_api.get(f"/images/{prediction.image_id}/file/").streaming_content)

    # The image and the patient seen a second time in the same minute are the same access (below).
    assert [action for _, action, _, _ in events()] == [
        "viewed_history",
        "viewed_image",
        "viewed_history",
        "listed_patients",
        "viewed_patient",
        "viewed_lesion",
        "downloaded_file",
    ]


def test_a_view_repeated_within_the_window_is_written_once_a_download_every_time(owner_api, owner, settings):
    from django.core.cache import cache

    prediction = make_prediction(owner)
    for _ in range(5):  # a client polling a pending reading
        owner_api.get(f"/api/v1/predictions/{prediction.pk}/")
        b"".join(owner_api.get(f"/images/{prediction.image_id}/file/").streaming_content)

    assert [action for _, action, _, _ in events()] == ["viewed_image"] + ["downloaded_file"] * 5

    cache.clear()  # the window (AUDIT_REPEAT_SECONDS) has passed
    owner_api.get(f"/api/v1/predictions/{prediction.pk}/")
    settings.AUDIT_REPEAT_SECONDS = 0  # every view written
    owner_api.get(f"/api/v1/predictions/{prediction.pk}/")
    owner_api.get(f"/api/v1/predictions/{prediction.pk}/")
    assert [action for _, action, _, _ in events()].count("viewed_image") == 4


def test_a_refused_read_writes_no_event(outsider_api, client, outsider, owner):
    prediction = make_prediction(owner)

    outsider_api.get(f"/api/v1/predictions/{prediction.pk}/")
    client.force_login(outsider)
    client.get(f"/predictions/{prediction.pk}/")
    client.get(f"/images/{prediction.image_id}/file/")

    assert not AuditEvent.objects.filter(object_type="image").exists()


def test_changes_through_the_api_are_audited(owner_api, clinic):
    created = owner_api.post("/api/v1/patients/", {"reference": "MRN-7"}, format="json").json()
    owner_api.patch(f"/api/v1/patients/{created['id']}/", {"note": "new note"}, format="json")
    lesion = owner_api.post(f"/api/v1/patients/{created['id']}/lesions/", {"site": "back"}, format="json").json()
    owner_api.patch(f"/api/v1/lesions/{lesion['id']}/", {"status": "excised"}, format="json")

    assert events(action__in=["created_patient", "changed_patient", "created_lesion", "changed_lesion"]) == [
        ("alice", "created_patient", "patient", created["id"]),
        ("alice", "changed_patient", "patient", created["id"]),
        ("alice", "created_lesion", "lesion", lesion["id"]),
        ("alice", "changed_lesion", "lesion", lesion["id"]),
    ]
    assert AuditEvent.objects.get(action="changed_lesion").detail == {"fields": ["status"]}
    assert set(AuditEvent.objects.values_list("patient_id", flat=True)) == {created["id"]}


def test_an_api_client_naming_its_clinic_is_audited_in_that_clinic(owner, other_clinic):
    other_clinic.add_member(owner, "clinician")

    token_client(owner).get("/api/v1/images/", HTTP_X_CLINIC=str(other_clinic.pk))

    assert AuditEvent.objects.get().clinic == other_clinic
