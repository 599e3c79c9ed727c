"""The admin shows an image by its stored, generated name; the name it was uploaded under (which may be a
patient's) only on its change page when asked, and asking is audited."""

from __future__ import annotations

import pytest

from classifier.audit import AuditEvent
from tests.factories import make_image, make_prediction

pytestmark = pytest.mark.django_db

UPLOADED = "jane-doe-1961-back.jpg"


@pytest.fixture
def image(owner):
    image = make_image(owner, original_filename=UPLOADED)
    make_prediction(owner, status="done", top_class="nv", image=image)
    return image


@pytest.mark.parametrize("listing", ["/admin/classifier/lesionimage/", "/admin/classifier/unlabelledimage/",
                                     "/admin/classifier/prediction/"])  # fmt: skip
def test_the_admin_lists_show_the_stored_name_not_the_uploaded_one(admin_client, image, listing):
    page = admin_client.get(listing).content.decode()

    assert UPLOADED not in page and "jane-doe" not in page
    assert image.file.name in page or f"Image {image.pk}" in page


def test_the_change_page_shows_the_uploaded_name_only_when_asked_and_audits_it(admin_client, admin_user, image):
    url = f"/admin/classifier/lesionimage/{image.pk}/change/"
    page = admin_client.get(url).content.decode()

    assert UPLOADED not in page
    assert f"Image {image.pk}" in page and "show_uploaded_name=1" in page
    assert not AuditEvent.objects.filter(detail__uploaded_name=True).exists()

    shown = admin_client.get(f"{url}?show_uploaded_name=1").content.decode()

    assert f"data-uploaded-name>{UPLOADED}<" in shown
    event = AuditEvent.objects.get(detail__uploaded_name=True)
    assert (event.user, event.action, event.object_id) == (admin_user, "viewed_image", image.pk)


def test_the_bulk_label_page_lists_images_by_number(admin_client, image):
    page = admin_client.post("/admin/classifier/lesionimage/",
                             {"action": "label_selected", "_selected_action": [image.pk]}).content.decode()  # fmt: skip

    assert f"Image {image.pk}" in page and UPLOADED not in page


def test_saving_an_image_in_the_admin_names_it_by_number_in_the_message(admin_client, image):
    url = f"/admin/classifier/lesionimage/{image.pk}/change/"
    form = {"age": "", "sex": "", "site": "", "source_lesion_id": "", "diagnosis": "mel", "diagnosis_method": "histo",
            "diagnosis_note": "", "clinician_note": "", "predictions-TOTAL_FORMS": "0",
            "predictions-INITIAL_FORMS": "0"}  # fmt: skip

    page = admin_client.post(url, form, follow=True).content.decode()

    assert f"Image {image.pk}" in page and "was changed successfully" in page
    assert UPLOADED not in page
