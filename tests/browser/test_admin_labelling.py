"""An admin labels an uploaded image with its confirmed diagnosis in the Django admin, in Chromium."""

from __future__ import annotations

import re

import pytest

from classifier.models import LesionImage
from tests.browser.conftest import lesion_image, screenshot
from tests.factories import make_prediction

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_an_admin_sets_the_confirmed_diagnosis_and_how_it_was_confirmed(page, live_server, owner, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "root-password-1")
    image = lesion_image(owner, 5, original_filename="shoulder.png", clinician_note="The clinician's own note")
    make_prediction(owner, status="done", top_class="nv", image=image, top_probability=0.62, is_malignant=False)

    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("root-password-1")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/admin/classifier/lesionimage/{image.pk}/change/")

    page.get_by_label("Diagnosis:", exact=True).select_option("mel")
    page.get_by_label("Diagnosis method").select_option(label="Histopathology")
    page.get_by_label("Diagnosis note").fill("Superficial spreading melanoma, Breslow 0.4 mm.")
    screenshot(page, "admin-labelling")
    page.get_by_role("button", name="Save", exact=True).click()

    page.wait_for_url(re.compile(r"/admin/classifier/lesionimage/$"))
    assert page.locator("ul.messagelist").inner_text().startswith("The lesion image")
    assert page.locator("tr", has_text="shoulder.png").locator("td.field-label_status").inner_text() == (
        "mel (Histopathology)"
    )
    image = LesionImage.objects.get(pk=image.pk)
    assert (image.diagnosis, image.diagnosis_method) == ("mel", "histo")
    assert image.diagnosis_note == "Superficial spreading melanoma, Breslow 0.4 mm."
    assert image.labelled_by == admin and image.labelled_at is not None
    assert image.clinician_note == "The clinician's own note"  # the admin's note is a different field
