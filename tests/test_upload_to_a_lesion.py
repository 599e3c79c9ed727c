"""Uploads go into the clinic the request works in, optionally as pictures of one of its lesions, taken
when the client or the camera says; a one-off upload is attached to a lesion later (API and page)."""

from __future__ import annotations

import datetime
import io

import pytest
from django.utils import timezone
from PIL import Image

from classifier.audit import AuditEvent
from classifier.models import LesionImage, Prediction
from tests.conftest import media_files, token_client
from tests.factories import make_image, make_lesion, make_patient, make_prediction
from tests.images import image_bytes, upload

pytestmark = pytest.mark.django_db
URL = "/api/v1/images/"


def post(client, *files, **fields):
    return client.post(URL, {"file": list(files), **fields}, format="multipart")


def jpeg_taken(when: str, offset: str | None = None, seed: int = 0) -> bytes:
    """A JPEG whose EXIF says when it was taken (DateTimeOriginal, and OffsetTimeOriginal if given)."""
    exif = Image.Exif()
    capture = exif.get_ifd(0x8769)
    capture[0x9003] = when
    if offset:
        capture[0x9011] = offset
    buffer = io.BytesIO()
    Image.open(io.BytesIO(image_bytes(seed=seed))).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def stored(response) -> LesionImage:
    return LesionImage.objects.get(pk=response.json()["images"][0]["id"])


@pytest.fixture
def lesion(clinic):
    return make_lesion(make_patient(clinic, "MRN-1"), label="L1, left scapula")


@pytest.fixture
def elsewhere(other_clinic):
    """A lesion of another clinic."""
    return make_lesion(make_patient(other_clinic, "MRN-B"))


# --- Upload


def test_an_upload_goes_into_the_uploaders_current_clinic(owner_api, owner, clinic):
    response = post(owner_api, upload(seed=1))

    assert response.status_code == 201
    image = stored(response)
    assert (image.clinic, image.owner, image.lesion) == (clinic, owner, None)
    assert image.taken_at == image.created_at  # no date given, none in the file
    assert AuditEvent.objects.filter(action="uploaded", object_id=image.pk).count() == 1


def test_an_upload_with_a_lesion_becomes_its_picture(owner_api, lesion):
    response = post(owner_api, upload(seed=2), upload(seed=3), lesion=lesion.pk)

    assert response.status_code == 201, response.content
    assert set(LesionImage.objects.values_list("lesion", flat=True)) == {lesion.pk}
    item = owner_api.get(f"{URL}{response.json()['images'][0]['id']}/").json()
    assert (item["lesion"], item["patient"]) == (lesion.pk, lesion.patient_id)


def test_a_lesion_of_another_clinic_is_a_404_like_a_missing_one_and_nothing_is_stored(owner_api, elsewhere):
    theirs = post(owner_api, upload(seed=4), lesion=elsewhere.pk)
    missing = post(owner_api, upload(seed=4), lesion=elsewhere.pk + 1000)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert LesionImage.objects.count() == Prediction.objects.count() == 0 and media_files() == []


def test_an_upload_may_name_another_of_the_uploaders_clinics(owner, other_clinic, elsewhere):
    other_clinic.add_member(owner, "clinician")

    response = token_client(owner).post(
        URL, {"file": [upload(seed=5)], "lesion": elsewhere.pk}, format="multipart", HTTP_X_CLINIC=str(other_clinic.pk)
    )

    assert response.status_code == 201, response.content
    assert stored(response).clinic == other_clinic


def test_a_taken_date_in_the_future_is_a_400_naming_the_field_and_nothing_is_stored(owner_api):
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()

    response = post(owner_api, upload(seed=6), taken_at=tomorrow)

    assert response.status_code == 400
    assert "taken_at" in response.json() and "in the future" in response.json()["taken_at"][0]
    assert LesionImage.objects.count() == 0 and media_files() == []


def test_a_taken_date_or_date_time_is_stored(owner_api):
    by_day = stored(post(owner_api, upload(seed=7), taken_at="2025-03-14"))
    by_time = stored(post(owner_api, upload(seed=8), taken_at="2025-03-14T08:30:00Z"))

    assert timezone.localtime(by_day.taken_at).date() == datetime.date(2025, 3, 14)
    assert by_time.taken_at == datetime.datetime(2025, 3, 14, 8, 30, tzinfo=datetime.UTC)


def test_an_unreadable_taken_date_is_a_400_naming_the_field(owner_api):
    response = post(owner_api, upload(seed=9), taken_at="last tuesday")

    assert response.status_code == 400 and "taken_at" in response.json()


def test_the_cameras_date_is_read_before_the_metadata_is_stripped(owner_api):
    image = stored(post(owner_api, upload("cam.jpg", data=jpeg_taken("2024:07:01 09:15:00"))))

    assert timezone.localtime(image.taken_at).replace(tzinfo=None) == datetime.datetime(2024, 7, 1, 9, 15)
    with image.file.open("rb") as handle:
        assert b"Exif" not in handle.read()  # stored without it


def test_the_cameras_utc_offset_is_honoured(owner_api):
    image = stored(post(owner_api, upload("cam.jpg", data=jpeg_taken("2024:07:01 09:15:00", "+02:00"))))

    assert image.taken_at == datetime.datetime(2024, 7, 1, 7, 15, tzinfo=datetime.UTC)


@pytest.mark.parametrize("when", ["1980:01:01 00:00:00", "2999:01:01 00:00:00", "garbage", "2024:13:45 99:00:00"])
def test_a_camera_date_that_is_not_sane_gives_way_to_the_upload_time(owner_api, when):
    image = stored(post(owner_api, upload("cam.jpg", data=jpeg_taken(when))))

    assert image.taken_at == image.created_at


def test_a_given_date_wins_over_the_cameras(owner_api):
    image = stored(post(owner_api, upload("cam.jpg", data=jpeg_taken("2024:07:01 09:15:00")), taken_at="2025-01-02"))

    assert timezone.localtime(image.taken_at).date() == datetime.date(2025, 1, 2)


def test_known_bytes_sent_for_a_lesion_say_the_lesion_was_not_applied(owner_api, lesion):
    post(owner_api, upload(seed=10))

    response = post(owner_api, upload(seed=10), lesion=lesion.pk)

    assert response.status_code == 200
    assert response.json()["images"][0]["ignored_fields"] == ["lesion"]
    assert LesionImage.objects.get().lesion is None


def test_a_teammate_uploading_the_same_bytes_gets_the_clinics_image(owner_api, teammate):
    first = post(owner_api, upload(seed=11))
    second = post(token_client(teammate), upload(seed=11))

    assert second.status_code == 200 and second.json()["images"][0]["id"] == first.json()["images"][0]["id"]


def test_the_upload_page_stores_into_a_lesion_on_a_date(owner_web, lesion):
    page = owner_web.get("/upload/").content.decode()
    assert "patient MRN-1 · L1, left scapula" in page

    response = owner_web.post("/upload/", {"files": [upload(seed=12)], "lesion": lesion.pk, "taken_at": "2025-05-06"})

    assert response.status_code == 302
    image = LesionImage.objects.get()
    assert image.lesion == lesion and timezone.localtime(image.taken_at).date() == datetime.date(2025, 5, 6)


def test_the_upload_page_refuses_another_clinics_lesion_and_a_future_date(owner_web, elsewhere):
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()

    theirs = owner_web.post("/upload/", {"files": [upload(seed=13)], "lesion": elsewhere.pk})
    future = owner_web.post("/upload/", {"files": [upload(seed=13)], "taken_at": tomorrow})

    assert theirs.status_code == future.status_code == 400
    assert "Select a valid choice" in theirs.content.decode()
    assert "The date is in the future." in future.content.decode()
    assert LesionImage.objects.count() == 0


# --- Attaching later


def test_a_one_off_upload_is_attached_with_patch(owner_api, owner, lesion):
    image = make_prediction(owner).image
    response = owner_api.patch(f"{URL}{image.pk}/", {"lesion": lesion.pk}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["lesion"] == lesion.pk and response.json()["prediction"]["status"] == "queued"
    event = AuditEvent.objects.get(action="attached_image")
    assert (event.object_id, event.patient_id, event.detail["lesion"]) == (image.pk, lesion.patient_id, lesion.pk)


def test_attaching_to_a_lesion_of_a_clinic_you_are_not_in_is_a_404(owner_api, owner, elsewhere):
    image = make_image(owner)

    response = owner_api.patch(f"{URL}{image.pk}/", {"lesion": elsewhere.pk}, format="json")

    assert response.status_code == 404
    image.refresh_from_db()
    assert image.lesion is None


def test_attaching_to_a_lesion_of_another_of_your_clinics_moves_the_image_there(owner_api, owner, other_clinic):
    other_clinic.add_member(owner, "clinician")
    there = make_lesion(make_patient(other_clinic))
    image = make_image(owner)

    response = owner_api.patch(f"{URL}{image.pk}/", {"lesion": there.pk}, format="json")

    assert response.status_code == 200
    image.refresh_from_db()
    assert image.clinic == other_clinic
    assert owner_api.get(f"{URL}{image.pk}/").status_code == 404  # no longer in the current clinic
    assert owner_api.get(f"{URL}{image.pk}/", HTTP_X_CLINIC=str(other_clinic.pk)).status_code == 200


def test_a_refused_attachment_is_a_400_naming_the_lesion(owner_api, owner, lesion, admin_user):
    lesion.set_label("nv", "histo", "", admin_user)
    image = make_image(owner)
    image.set_label("mel", "histo", "", admin_user)

    response = owner_api.patch(f"{URL}{image.pk}/", {"lesion": lesion.pk}, format="json")

    assert response.status_code == 400 and "labelled mel" in response.json()["lesion"][0]
    assert not AuditEvent.objects.filter(action="attached_image").exists()


def test_patch_changes_nothing_but_the_lesion(owner_api, owner, lesion):
    image = make_image(owner)

    response = owner_api.patch(f"{URL}{image.pk}/", {"lesion": lesion.pk, "age": 40}, format="json")

    assert response.status_code == 400 and "age" in response.json()


def test_nobody_outside_the_clinic_attaches_its_images(outsider_api, anonymous_api, owner, lesion):
    image = make_image(owner)

    assert outsider_api.patch(f"{URL}{image.pk}/", {"lesion": lesion.pk}, format="json").status_code == 404
    assert anonymous_api.patch(f"{URL}{image.pk}/", {"lesion": lesion.pk}, format="json").status_code == 401
    image.refresh_from_db()
    assert image.lesion is None


def test_the_result_page_offers_the_lesions_and_attaches(owner_web, owner, lesion):
    prediction = make_prediction(owner)
    page = owner_web.get(f"/predictions/{prediction.pk}/").content.decode()
    assert f'action="/images/{prediction.image_id}/lesion/"' in page and "patient MRN-1" in page

    response = owner_web.post(f"/images/{prediction.image_id}/lesion/", {"lesion": lesion.pk}, follow=True)

    assert response.status_code == 200 and "is now a picture of L1, left scapula" in response.content.decode()
    assert LesionImage.objects.get().lesion == lesion
    page = owner_web.get(f"/predictions/{prediction.pk}/").content.decode()
    assert f'action="/images/{prediction.image_id}/lesion/"' not in page  # attached: no form any more


def test_the_result_pages_attach_form_is_the_clinics_only(client, outsider, owner, lesion):
    prediction = make_prediction(owner)
    client.force_login(outsider)

    assert client.post(f"/images/{prediction.image_id}/lesion/", {"lesion": lesion.pk}).status_code == 404
    assert LesionImage.objects.get().lesion is None
