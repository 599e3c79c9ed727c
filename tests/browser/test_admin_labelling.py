"""An admin labels an uploaded image with its confirmed diagnosis in the Django admin, in Chromium."""

from __future__ import annotations

import re

import pytest

from classifier.models import LesionImage
from tests.browser.conftest import give_code_if_asked, lesion_image, screenshot
from tests.factories import make_prediction
from tests.signing_in import enrolled_phone

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def admin_log_in(page, live_server, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "root-password-1")
    enrolled_phone(admin)  # staff sign in with a second factor
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("root-password-1")
    page.get_by_role("button", name="Log in").click()
    give_code_if_asked(page, "root")
    page.wait_for_url(f"{live_server.url}/admin/")
    return admin


def test_an_admin_sets_the_confirmed_diagnosis_and_how_it_was_confirmed(page, live_server, owner, django_user_model):
    image = lesion_image(owner, 5, original_filename="shoulder.png", clinician_note="The clinician's own note")
    make_prediction(owner, status="done", top_class="nv", image=image, top_probability=0.62, is_malignant=False)
    admin = admin_log_in(page, live_server, django_user_model)
    page.goto(f"{live_server.url}/admin/classifier/lesionimage/{image.pk}/change/")

    assert not page.get_by_role("button", name="Add another Prediction").is_visible()  # readings come from workers
    page.get_by_label("Diagnosis:", exact=True).select_option("mel")
    page.get_by_label("Diagnosis method").select_option(label="Histopathology")
    page.get_by_label("Diagnosis note").fill("Superficial spreading melanoma, Breslow 0.4 mm.")
    screenshot(page, "admin-labelling")
    page.get_by_role("button", name="Save", exact=True).click()

    page.wait_for_url(re.compile(r"/admin/classifier/lesionimage/$"))
    assert page.locator("ul.messagelist").inner_text().startswith(f"The lesion image “Image {image.pk}”")
    assert page.locator("tr", has_text=image.file.name).locator("td.field-label_status").inner_text() == (
        "mel (Histopathology)"
    )
    assert "shoulder.png" not in page.content()  # shown by its stored name, never the uploaded one
    image = LesionImage.objects.get(pk=image.pk)
    assert (image.diagnosis, image.diagnosis_method) == ("mel", "histo")
    assert image.diagnosis_note == "Superficial spreading melanoma, Breslow 0.4 mm."
    assert image.labelled_by == admin and image.labelled_at is not None
    assert image.clinician_note == "The clinician's own note"  # the admin's note is a different field


def lines_of(page, selector: str) -> int:
    """How many lines the text of the first element matching selector takes on screen."""
    return page.evaluate(
        """(selector) => {
            const range = document.createRange();
            range.selectNodeContents(document.querySelector(selector));
            return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
        }""",
        selector,
    )


def test_file_and_version_names_are_not_broken_at_their_hyphens_in_admin_tables(
    page, live_server, owner, django_user_model
):
    name = "dermoscopy-2026-05-12-left-shoulder-lesion-follow-up.png"
    image = lesion_image(owner, 6, original_filename=name)
    make_prediction(owner, status="done", top_class="nv", image=image, top_probability=0.62)
    admin_log_in(page, live_server, django_user_model)
    page.set_viewport_size({"width": 640, "height": 900})

    page.goto(f"{live_server.url}/admin/classifier/lesionimage/")
    assert page.locator("#result_list .field-stored_name").inner_text() == image.file.name
    assert lines_of(page, "#result_list .field-stored_name") == 1

    page.goto(f"{live_server.url}/admin/classifier/prediction/")
    assert lines_of(page, "#result_list td.field-image_ref") == 1


def test_an_admin_activates_a_never_gated_version_only_after_reading_why(
    page, live_server, django_user_model, tmp_path, settings
):
    from classifier.models import ModelVersion
    from classifier.registry import register_model_versions
    from tests.tiny_model import write_card_only

    write_card_only(tmp_path, "mobilenetv2-150-v2", created="2026-01-01T00:00:00Z")
    write_card_only(tmp_path, "mobilenetv2-150-v3", created="2026-02-01T00:00:00Z")
    settings.MODEL_ROOT = tmp_path
    register_model_versions(tmp_path)
    admin = admin_log_in(page, live_server, django_user_model)

    page.goto(f"{live_server.url}/admin/classifier/modelversion/")
    page.locator("tr", has_text="mobilenetv2-150-v2").get_by_role("button", name="Activate").click()

    assert page.get_by_role("heading", name="Activate mobilenetv2-150-v2?").is_visible()
    assert "never checked by the quality gate" in page.locator("ul.activation-reasons").inner_text()
    assert ModelVersion.active().name == "mobilenetv2-150-v3"
    screenshot(page, "admin-activation-confirmation")
    page.get_by_role("button", name="Activate mobilenetv2-150-v2 anyway").click()

    page.wait_for_url(re.compile(r"/admin/classifier/modelversion/$"))
    assert "overridden and recorded" in page.locator("ul.messagelist").inner_text()
    version = ModelVersion.active()
    assert version.name == "mobilenetv2-150-v2"
    activation = version.activations.get()
    assert activation.activated_by == admin and activation.overrode_gate
