"""A clinician logs in, uploads an image and sees its result arrive without reloading the page."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot
from tests.images import image_bytes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/upload/")


def test_an_uploaded_image_shows_its_result_without_a_reload(
    page, live_server, celery_worker, owner, active_tiny_model, tmp_path
):
    log_in(page, live_server, "alice", "alice-password-1")
    lesion = tmp_path / "lesion.jpg"
    lesion.write_bytes(image_bytes("JPEG", (200, 150), seed=11))

    page.get_by_label("Dermatoscopic images").set_input_files(str(lesion))
    page.get_by_role("button", name="Upload and classify").click()
    page.wait_for_url("**/predictions/*/")
    page.evaluate("window.__sameDocument = true")  # lost if the page reloads

    page.locator('[data-field="status"]', has_text="Done").wait_for()

    assert page.evaluate("window.__sameDocument") is True
    assert page.get_by_text("Research tool, not a diagnosis").is_visible()
    top_name = page.locator('[data-field="top_class_name"]').inner_text()
    assert top_name in {
        "Actinic keratosis / intraepithelial carcinoma", "Basal cell carcinoma", "Benign keratosis-like lesion",
        "Dermatofibroma", "Melanoma", "Melanocytic nevus", "Vascular lesion",
    }  # fmt: skip
    percentages = page.locator("table.bars .pct").all_inner_texts()
    assert len(percentages) == 7
    assert sum(float(text.rstrip(" %")) for text in percentages) == pytest.approx(100, abs=0.5)
    assert page.locator('[data-field="model_version"]').inner_text() == "tiny-v1"
    assert page.locator('[data-field="malignancy_flag"]').inner_text() != ""
    screenshot(page, "result")


def test_a_file_that_is_not_an_image_is_marked_before_it_is_sent(page, live_server, owner, tmp_path):
    log_in(page, live_server, "alice", "alice-password-1")
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")

    page.get_by_label("Dermatoscopic images").set_input_files(str(fake))

    warning = page.locator("#file-list li", has_text="notes.jpg").locator(".file-warning")
    assert "it will be refused" in warning.inner_text()
    assert page.get_by_role("button", name="Upload and classify").is_disabled()
    screenshot(page, "upload-error")
