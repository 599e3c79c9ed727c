"""A patient's record exported (one zip: JSON and the stored pictures) and erased (nothing left but the
audit log's numbers), by a clinic manager after a confirmation page; nobody else may."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from classifier.audit import AuditEvent
from classifier.models import BatchEntry, Lesion, LesionImage, Patient, Prediction, UploadBatch
from classifier.patient_record import erase_patient
from classifier.thumbnails import ensure_thumbnail, thumbnail_name
from tests.conftest import media_files
from tests.factories import make_batch, make_image, make_lesion, make_patient, make_prediction, make_visit
from tests.signing_in import verified_login

pytestmark = pytest.mark.django_db


def day(n: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime(2026, 1, 1, 12) + dt.timedelta(days=n))


@pytest.fixture
def manager_web(client, manager):
    verified_login(client, manager)
    return client


@pytest.fixture
def patient(clinic, owner):
    person = make_patient(clinic, "MRN-0042", year_of_birth=1961, note="Yearly check")
    mole = make_lesion(person, site="back", side="left", label="L1", note="Irregular border")
    batch = make_batch(owner)
    first = make_visit(owner, mole, day(0), score=0.2, batch=batch,
                       explanation={"method": "layer-cam", "grid": [[0.5]], "box": [0, 0, 1, 1]},
                       lesion_outline={"area": 0.12, "grid": [[1]], "box": [0, 0, 1, 1]})  # fmt: skip
    make_prediction(owner, image=first, status="failed", error="worker lost")  # a re-run: two predictions
    make_visit(owner, mole, day(60), score=0.6, top_class="mel")
    for image in LesionImage.objects.all():
        ensure_thumbnail(image)
    return person


def record_of(response) -> tuple[dict, zipfile.ZipFile]:
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    return json.loads(archive.read("record.json")), archive


# --- Who may


def test_only_the_clinics_managers_export_or_erase(client, owner, outsider, patient, django_user_model,
                                                   other_clinic):  # fmt: skip
    other_manager = django_user_model.objects.create_user("olga", password="olga-password-1")
    other_clinic.add_member(other_manager, "manager")
    for person in (owner, outsider, other_manager):
        verified_login(client, person)
        for url in (f"/patients/{patient.pk}/export/", f"/patients/{patient.pk}/erase/"):
            assert client.get(url).status_code == 404, (person, url)
            assert client.post(url, {"confirm_reference": "MRN-0042"}).status_code == 404, (person, url)
    client.logout()
    for url in (f"/patients/{patient.pk}/export/", f"/patients/{patient.pk}/erase/"):
        assert client.get(url)["Location"].startswith("/login/"), url
        assert client.post(url, {"confirm_reference": "MRN-0042"})["Location"].startswith("/login/"), url
    assert Patient.objects.filter(pk=patient.pk).exists()
    assert not AuditEvent.objects.filter(action__in=["exported_record", "erased"]).exists()


# --- Export


def test_the_export_page_says_what_the_zip_holds_and_is_audited_as_a_read(manager_web, patient):
    page = manager_web.get(f"/patients/{patient.pk}/export/").content.decode()
    assert "record.json" in page and "images/&lt;picture id&gt;.png" in page
    event = AuditEvent.objects.get()
    assert (event.action, event.object_id, event.detail) == ("viewed_patient", patient.pk, {"page": "export"})


def test_the_export_holds_the_patient_lesions_images_predictions_and_the_stored_files(manager_web, patient):
    response = manager_web.post(f"/patients/{patient.pk}/export/")

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Cache-Control"] == "private, no-store"
    record, archive = record_of(response)
    assert record["format"] == "lesionsite patient record" and record["clinic"] == "Clinic A"
    assert record["patient"]["reference"] == "MRN-0042" and record["patient"]["note"] == "Yearly check"
    (lesion,) = record["lesions"]
    assert (lesion["label"], lesion["note"]) == ("L1", "Irregular border")
    images = lesion["images"]
    stored = list(LesionImage.objects.order_by("taken_at"))
    assert [image["id"] for image in images] == [image.pk for image in stored]
    assert [len(image["predictions"]) for image in images] == [2, 1]
    first = images[0]["predictions"][0]
    assert first["explanation"]["grid"] == [[0.5]] and first["lesion_outline"]["area"] == 0.12
    assert images[0]["predictions"][1]["error"] == "worker lost"
    for entry, image in zip(images, stored, strict=True):
        assert archive.read(entry["file"]) == image.file.open("rb").read()
    assert sorted(archive.namelist()) == sorted(["record.json", *(entry["file"] for entry in images)])
    event = AuditEvent.objects.get()
    assert (event.action, event.object_type, event.patient_id) == ("exported_record", "patient", patient.pk)


def test_a_missing_file_is_said_in_the_record_not_a_failed_export(manager_web, patient):
    image = LesionImage.objects.order_by("taken_at").first()
    default_storage.delete(image.file.name)

    record, archive = record_of(manager_web.post(f"/patients/{patient.pk}/export/"))

    entry = record["lesions"][0]["images"][0]
    assert entry["file"] is None and entry["file_missing"] is True
    assert len(archive.namelist()) == 2  # record.json and the other picture


# --- Erasure


def test_the_erase_page_asks_for_the_reference_and_a_wrong_one_erases_nothing(manager_web, patient):
    page = manager_web.get(f"/patients/{patient.pk}/erase/").content.decode()
    assert "This is final" in page and "2 pictures" in page

    response = manager_web.post(f"/patients/{patient.pk}/erase/", {"confirm_reference": "MRN-0043"})

    assert response.status_code == 400
    assert "That is not this patient&#x27;s reference: nothing was erased." in response.content.decode()
    assert Patient.objects.filter(pk=patient.pk).exists() and LesionImage.objects.count() == 2


def test_erasing_leaves_no_row_and_no_file_and_the_audit_log_keeps_only_that_it_happened(
    manager_web, owner, patient, django_capture_on_commit_callbacks
):
    colleague = Client()
    colleague.force_login(owner)
    colleague.get(f"/patients/{patient.pk}/")  # a read before: its entry stays
    files_before = media_files()
    assert len(files_before) == 4  # two pictures, two thumbnails

    with django_capture_on_commit_callbacks(execute=True):  # the files go once the rows' deletion has committed
        response = manager_web.post(f"/patients/{patient.pk}/erase/", {"confirm_reference": "MRN-0042"}, follow=True)

    assert response.redirect_chain[-1][0] == "/patients/"
    assert "Patient MRN-0042 was erased" in response.content.decode()
    for model in (Patient, Lesion, LesionImage, Prediction, BatchEntry, UploadBatch):
        assert not model.objects.exists(), model.__name__
    assert media_files() == []
    erased = AuditEvent.objects.get(action="erased")
    assert (erased.object_type, erased.object_id, erased.patient_id) == ("patient", patient.pk, patient.pk)
    assert erased.detail == {"lesions": 1, "images": 2, "predictions": 3, "files": 4}
    assert AuditEvent.objects.filter(action="viewed_patient", patient_id=patient.pk).count() == 1
    for event in AuditEvent.objects.all():
        assert "MRN-0042" not in json.dumps(event.detail) + event.object_repr


def test_a_picture_another_clinic_also_holds_keeps_its_file_for_that_clinic(
    outsider, other_clinic, patient, django_capture_on_commit_callbacks
):
    shared = LesionImage.objects.order_by("taken_at").first()
    theirs = make_image(outsider, clinic=other_clinic)
    LesionImage.objects.filter(pk=theirs.pk).update(sha256=shared.sha256, file=shared.file.name)

    with django_capture_on_commit_callbacks(execute=True):
        erased = erase_patient(patient)

    assert erased.files == 2  # the other picture and its thumbnail
    assert default_storage.exists(shared.file.name) and default_storage.exists(thumbnail_name(shared.sha256))
    assert LesionImage.objects.get().pk == theirs.pk


def test_a_batch_keeps_the_pictures_that_were_not_the_patients(owner, patient):
    kept = make_image(owner, batch=LesionImage.objects.exclude(batch=None).get().batch)

    erase_patient(patient)

    assert UploadBatch.objects.get().images.get() == kept


def test_an_erasure_that_fails_leaves_the_record_and_its_files_whole(patient, django_capture_on_commit_callbacks):
    from django.db import transaction

    def erase_then_fail():
        with transaction.atomic():
            erase_patient(patient)
            raise RuntimeError("the audit insert failed")

    files, pk = media_files(), patient.pk
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True) as callbacks:
        erase_then_fail()
    assert callbacks == []  # the rollback dropped the files' deletion

    assert Patient.objects.filter(pk=pk).exists() and LesionImage.objects.count() == 2
    assert sorted(media_files()) == sorted(files)
