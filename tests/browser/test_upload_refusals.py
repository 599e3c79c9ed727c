"""Refused files in Chromium: every reason shown at once, Submit off until they are removed, the rest kept."""

from __future__ import annotations

import pytest

from classifier.models import LesionImage
from tests.browser.conftest import lesion_png, log_in, screenshot
from tests.images import image_bytes
from tests.test_upload_refusals import AVIF_BYTES

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SIZE_LIMIT = 100_000  # bytes, shown as 97.7 KB: the lesion picture is ~38 KB, the BMP ~117 KB


def chooser_file(name: str, data: bytes, mime: str) -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


def the_issues_five_files() -> list[dict]:
    """An AVIF and an HTML page both named .jpg (so their type says JPEG), a 0-byte file, a big one, a good one."""
    return [
        chooser_file("IMG_0412.jpg", AVIF_BYTES, "image/jpeg"),
        chooser_file("referral.jpg", b"<!doctype html><html><body>Referral letter</body></html>", "image/jpeg"),
        chooser_file("empty.png", b"", "image/png"),
        chooser_file("huge.bmp", image_bytes("BMP", (200, 200)), "image/bmp"),
        chooser_file("lesion.png", lesion_png(seed=5), "image/png"),
    ]


def listed(page) -> dict[str, str]:
    """Each listed file's name and the warning shown beside it ("" when none)."""
    rows = page.locator("#file-list li").evaluate_all(
        """items => items.map(li => [
            li.querySelector('.file-name').textContent,
            (li.querySelector('.file-warning') || {textContent: ''}).textContent,
        ])"""
    )
    return dict(rows)


def chosen_in_input(page) -> list[str]:
    return page.evaluate("Array.from(document.getElementById('id_files').files, (f) => f.name)")


def test_every_refused_file_is_marked_at_once_and_submit_waits_until_they_are_removed(
    page, live_server, celery_worker, owner, active_tiny_model, settings
):
    settings.UPLOAD_MAX_BYTES = SIZE_LIMIT
    log_in(page, live_server.url, "alice", "alice-password-1")
    submit = page.get_by_role("button", name="Upload and classify")

    page.get_by_label("Dermatoscopic images").set_input_files(the_issues_five_files())
    page.locator("#file-list li[data-warning]").nth(3).wait_for()  # the first bytes are read asynchronously

    assert listed(page) == {
        "IMG_0412.jpg": "⚠ in AVIF format, not JPEG, PNG, WebP, HEIC, TIFF or BMP: it will be refused",
        "referral.jpg": "⚠ not a JPEG, PNG, WebP, HEIC, TIFF or BMP image, whatever its name says: it will be refused",
        "empty.png": "⚠ empty (0 bytes): it will be refused",
        "huge.bmp": "⚠ larger than the 97.7 KB limit: it will be refused",
        "lesion.png": "",
    }
    assert "5 files chosen" in page.locator("#chosen-summary").inner_text()
    assert "4 marked ⚠ will be refused." in page.locator("#chosen-summary").inner_text()
    assert submit.is_disabled()
    reason = page.locator("#submit-reason")
    assert reason.inner_text() == "Upload is off: remove 4 refused files first."
    assert reason.get_attribute("aria-live") == "polite"
    assert submit.get_attribute("aria-describedby") == "submit-reason"
    screenshot(page, "upload-refused-files")

    page.get_by_role("button", name="Remove the 4 refused files").click()

    assert listed(page) == {"lesion.png": ""}
    assert chosen_in_input(page) == ["lesion.png"]
    assert submit.is_enabled() and reason.inner_text() == ""
    assert page.get_by_role("button", name="Remove the 4 refused files").count() == 0
    submit.click()
    page.wait_for_url("**/predictions/*/")
    assert LesionImage.objects.get(owner=owner).original_filename == "lesion.png"


def test_a_file_only_the_server_refuses_is_marked_in_the_list_and_the_selection_is_kept(
    page, live_server, celery_worker, owner, active_tiny_model
):
    log_in(page, live_server.url, "alice", "alice-password-1")
    truncated = image_bytes("JPEG", (200, 150))[:600]  # starts like a JPEG: only a full decode finds the cut
    files = [
        chooser_file("lesion.png", lesion_png(seed=6), "image/png"),
        chooser_file("cut.jpg", truncated, "image/jpeg"),
    ]
    page.get_by_label("Dermatoscopic images").set_input_files(files)
    submit = page.get_by_role("button", name="Upload and classify")
    page.wait_for_function("() => !document.querySelector('[data-submit]').disabled")
    assert listed(page) == {"lesion.png": "", "cut.jpg": ""}
    page.evaluate("window.__samePage = true")  # lost if the form were posted the plain way

    submit.click()

    page.locator('#file-list li[data-refused-by="server"]').wait_for()
    assert page.evaluate("window.__samePage") is True
    assert listed(page) == {
        "lesion.png": "",
        "cut.jpg": "⚠ cut.jpg is not a complete image: the file is truncated or corrupt.",
    }
    assert chosen_in_input(page) == ["lesion.png", "cut.jpg"]
    assert page.get_by_role("alert").filter(has_text="Nothing was stored: 1 file was refused").is_visible()
    assert submit.is_disabled()
    assert page.evaluate("document.activeElement.textContent") == "Remove the refused file"
    assert LesionImage.objects.count() == 0
    screenshot(page, "upload-refused-by-the-server")

    page.keyboard.press("Enter")

    assert chosen_in_input(page) == ["lesion.png"]
    submit.click()
    page.wait_for_url("**/predictions/*/")
    assert LesionImage.objects.get(owner=owner).original_filename == "lesion.png"


def test_without_javascript_the_page_lists_every_refused_file_and_what_to_leave_out(
    chromium_browser, live_server, owner, settings
):
    settings.UPLOAD_MAX_BYTES = SIZE_LIMIT
    context = chromium_browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, live_server.url, "alice", "alice-password-1")
        page.get_by_label("Dermatoscopic images").set_input_files(the_issues_five_files())
        page.get_by_role("button", name="Upload and classify").click()

        shown = page.get_by_role("alert").filter(has_text="Nothing was stored")
        assert "Nothing was stored: 4 of the 5 files were refused." in shown.inner_text()
        assert "Choose your files again without these:" in shown.inner_text()
        refused = page.locator("[data-refused-file]").all_inner_texts()
        assert refused == [
            "IMG_0412.jpg is in AVIF format, which is not accepted. "
            "Please upload a JPEG, PNG, WebP, HEIC, TIFF or BMP image.",
            "referral.jpg is not an image. Please upload a JPEG, PNG, WebP, HEIC, TIFF or BMP image.",
            "empty.png is empty: the file contains no data.",
            "huge.bmp is 117.2 KB; the limit is 97.7 KB.",
        ]
        assert LesionImage.objects.count() == 0
        screenshot(page, "upload-refused-without-javascript")
    finally:
        context.close()
