"""Labelling an image of a lesion labels the lesion, so retraining sees every picture of a confirmed
lesion; images without a lesion keep their own label; attaching an image carries the lesion's label."""

from __future__ import annotations

import pytest

from classifier.audit import AuditEvent
from classifier.models import AttachRefused, LesionImage
from classifier.training_data import labelled_counts
from tests.conftest import token_client
from tests.factories import make_image, make_lesion, make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def lesion(clinic):
    return make_lesion(make_patient(clinic))


def labels(images) -> list[tuple[str, str]]:
    return [(i.diagnosis, i.diagnosis_method) for i in LesionImage.objects.filter(pk__in=[i.pk for i in images])]


def test_labelling_one_image_of_a_lesion_through_the_api_labels_the_lesion_and_all_its_images(
    admin_user, owner, lesion
):
    images = [make_image(owner, lesion=lesion) for _ in range(3)]
    alone = make_image(owner)

    response = token_client(admin_user).post(
        f"/api/v1/images/{images[0].pk}/label/", {"diagnosis": "mel", "method": "histo"}, format="json"
    )

    assert response.status_code == 200, response.content
    lesion.refresh_from_db()
    assert (lesion.diagnosis, lesion.diagnosis_method, lesion.labelled_by) == ("mel", "histo", admin_user)
    assert labels(images) == [("mel", "histo")] * 3
    assert labels([alone]) == [("", "")]
    event = AuditEvent.objects.get(action="labelled")
    assert (event.object_type, event.object_id, event.patient_id) == ("lesion", lesion.pk, lesion.patient_id)


def test_the_bulk_label_labels_the_lesions_of_the_selected_images_and_the_rest_alone(admin_client, owner, lesion):
    of_lesion = [make_image(owner, lesion=lesion) for _ in range(2)]
    alone, other = make_image(owner), make_image(owner)

    done = admin_client.post(
        "/admin/classifier/lesionimage/",
        {"action": "label_selected", "_selected_action": [of_lesion[0].pk, alone.pk], "apply": "1",
         "diagnosis": "bcc", "method": "histo"},
    )  # fmt: skip

    assert done.status_code == 302
    assert labels([*of_lesion, alone]) == [("bcc", "histo")] * 3
    assert labels([other]) == [("", "")]
    lesion.refresh_from_db()
    assert lesion.diagnosis == "bcc"
    assert AuditEvent.objects.filter(action="labelled").count() == 2  # one per selected image


def test_the_admins_change_form_labels_the_lesion_of_an_image(admin_client, owner, lesion):
    image, sibling = make_image(owner, lesion=lesion), make_image(owner, lesion=lesion)
    form = admin_client.get(f"/admin/classifier/lesionimage/{image.pk}/change/")
    assert form.status_code == 200

    response = admin_client.post(
        f"/admin/classifier/lesionimage/{image.pk}/change/",
        {"age": "", "sex": "", "site": "", "source_lesion_id": "", "diagnosis": "nv", "diagnosis_method": "follow_up",
         "diagnosis_note": "stable 2 years", "clinician_note": "",
         "predictions-TOTAL_FORMS": "0", "predictions-INITIAL_FORMS": "0"},
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:2000]
    assert labels([image, sibling]) == [("nv", "follow_up")] * 2
    lesion.refresh_from_db()
    assert (lesion.diagnosis, lesion.diagnosis_note) == ("nv", "stable 2 years")


def test_taking_the_label_off_an_image_of_a_lesion_in_the_admin_takes_it_off_the_lesion(
    admin_client, admin_user, owner, lesion
):
    image, sibling = make_image(owner, lesion=lesion), make_image(owner, lesion=lesion)
    lesion.set_label("mel", "histo", "", admin_user)

    response = admin_client.post(
        f"/admin/classifier/lesionimage/{image.pk}/change/",
        {"age": "", "sex": "", "site": "", "source_lesion_id": "", "diagnosis": "", "diagnosis_method": "",
         "diagnosis_note": "", "clinician_note": "", "predictions-TOTAL_FORMS": "0", "predictions-INITIAL_FORMS": "0"},
    )  # fmt: skip

    assert response.status_code == 302
    assert labels([image, sibling]) == [("", "")] * 2
    lesion.refresh_from_db()
    assert (lesion.diagnosis, lesion.labelled_by) == ("", None)


def test_retraining_counts_every_picture_of_a_confirmed_lesion(admin_user, owner, lesion):
    images = [make_image(owner, lesion=lesion) for _ in range(4)]
    images[0].set_label("df", "histo", "", admin_user)

    counts = labelled_counts()

    assert sum(per_class["df"] for per_class in counts.values()) == 4
    # A lesion's pictures are one group: all four sit in the same part.
    assert sorted(per_class["df"] for per_class in counts.values()) == [0, 0, 4]


def test_an_image_uploaded_to_a_labelled_lesion_carries_its_label(owner_api, lesion, admin_user):
    from tests.images import upload

    lesion.set_label("mel", "histo", "", admin_user)

    response = owner_api.post("/api/v1/images/", {"file": [upload(seed=41)], "lesion": lesion.pk}, format="multipart")

    assert response.status_code == 201, response.content
    image = LesionImage.objects.get(pk=response.json()["images"][0]["id"])
    assert (image.lesion, image.diagnosis, image.labelled_by) == (lesion, "mel", admin_user)


# --- attaching a one-off upload


def test_attaching_an_image_to_a_labelled_lesion_gives_it_the_lesions_label(owner, lesion, admin_user):
    lesion.set_label("bkl", "consensus", "", admin_user)
    image = make_image(owner)

    image.attach_to(lesion)

    assert image.lesion == lesion and (image.diagnosis, image.diagnosis_method) == ("bkl", "consensus")


def test_attaching_a_labelled_image_to_an_unlabelled_lesion_labels_the_lesion(owner, lesion, admin_user):
    sibling = make_image(owner, lesion=lesion)
    image = make_image(owner)
    image.set_label("vasc", "histo", "", admin_user)

    image.attach_to(lesion)

    lesion.refresh_from_db()
    assert lesion.diagnosis == "vasc"
    assert labels([sibling, image]) == [("vasc", "histo")] * 2


def test_attaching_is_refused_and_changes_nothing_when_the_labels_disagree(owner, lesion, admin_user):
    lesion.set_label("nv", "histo", "", admin_user)
    image = make_image(owner)
    image.set_label("mel", "histo", "", admin_user)

    with pytest.raises(AttachRefused, match="labelled mel and the lesion nv"):
        image.attach_to(lesion)

    image.refresh_from_db()
    assert image.lesion is None and image.diagnosis == "mel"


def test_attaching_moves_the_image_into_the_lesions_clinic_out_of_its_batch(owner, other_clinic):
    from tests.factories import make_batch

    other_clinic.add_member(owner, "clinician")
    elsewhere = make_lesion(make_patient(other_clinic))
    image = make_image(owner, batch=make_batch(owner))

    image.attach_to(elsewhere)

    image.refresh_from_db()
    assert (image.clinic, image.lesion, image.batch) == (other_clinic, elsewhere, None)


def test_attaching_is_refused_when_the_lesions_clinic_holds_the_same_picture(owner, other_clinic):
    other_clinic.add_member(owner, "clinician")
    elsewhere = make_lesion(make_patient(other_clinic))
    image = make_image(owner)
    twin = make_image(owner, clinic=other_clinic)
    LesionImage.objects.filter(pk=twin.pk).update(sha256=image.sha256)

    with pytest.raises(AttachRefused, match=f"image {twin.pk}"):
        image.attach_to(elsewhere)
    image.refresh_from_db()
    assert image.lesion is None


def test_an_image_of_one_lesion_cannot_be_attached_to_another(owner, clinic, lesion):
    image = make_image(owner, lesion=lesion)
    other = make_lesion(lesion.patient, site="face")

    with pytest.raises(AttachRefused, match="already a picture of lesion"):
        image.attach_to(other)
