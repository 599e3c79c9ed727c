"""Batch upload in Chromium: drag and drop, the keyboard, no JavaScript; then the batch page fills in."""

from __future__ import annotations

import re

import pytest

from classifier.models import Prediction, UploadBatch
from tests.browser.conftest import drop_files, lesion_image, lesion_png, log_in, screenshot
from tests.factories import make_batch, make_prediction

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WAIT_MS = 90_000  # a real worker classifies the batch; its first task loads the model


def listed_files(page) -> list[str]:
    return page.locator("#file-list .file-name").all_inner_texts()


def chosen_in_input(page) -> list[str]:
    return page.evaluate("Array.from(document.getElementById('id_files').files, (f) => f.name)")


def wait_for_the_whole_batch(page, count: int) -> None:
    progress = page.locator("#batch-progress")
    assert progress.get_attribute("max") == str(count)
    page.wait_for_function(
        "() => { const p = document.getElementById('batch-progress'); return p.value === p.max; }", timeout=WAIT_MS
    )


def test_images_dropped_on_the_zone_are_listed_uploaded_and_classified_suspicious_first(
    page, live_server, celery_worker, owner, active_tiny_model
):
    log_in(page, live_server.url, "alice", "alice-password-1")
    lesions = [(f"lesion-{n}.png", lesion_png(seed=n), "image/png") for n in range(5)]

    drop_files(page, "#dropzone", [*lesions, ("referral-letter.txt", b"Dear colleague", "text/plain")])

    assert listed_files(page) == [name for name, _, _ in lesions] + ["referral-letter.txt"]
    assert chosen_in_input(page) == listed_files(page)  # the drop really filled the form's input
    sizes = page.locator("#file-list .file-size").all_inner_texts()
    assert sizes[-1] == "14 B" and all(re.fullmatch(r"\d+\.\d KB", size) for size in sizes[:-1])
    letter = page.locator("#file-list li", has_text="referral-letter.txt")
    assert "will be refused" in letter.inner_text()
    assert "6 files chosen" in page.locator("#chosen-summary").inner_text()
    screenshot(page, "upload-dropped")

    page.get_by_role("button", name="Remove referral-letter.txt").press("Enter")
    drop_files(page, "#dropzone", lesions[:1])  # the same file again is not added twice

    assert chosen_in_input(page) == [name for name, _, _ in lesions]
    assert "5 files chosen" in page.locator("#chosen-summary").inner_text()
    page.get_by_role("button", name="Upload and classify").click()
    page.wait_for_url("**/batches/*/")

    wait_for_the_whole_batch(page, 5)

    batch = UploadBatch.objects.get(owner=owner)
    predictions = list(Prediction.objects.filter(image__batch=batch))
    assert [p.status for p in predictions] == ["done"] * 5, celery_worker.log()
    shown = [
        int(pk) for pk in page.locator("#batch tbody tr").evaluate_all("rows => rows.map(r => r.dataset.prediction)")
    ]
    assert shown == [p.pk for p in Prediction.by_attention(predictions)]  # the page's order is the model's
    flagged = sum(1 for p in predictions if p.is_malignant)
    assert page.locator("#batch-count").inner_text() == f"All 5 finished: {flagged} flagged as suspicious."
    assert page.locator("#batch-count").get_attribute("aria-live") == "polite"
    for prediction in predictions:
        row = page.locator(f'tr[data-prediction="{prediction.pk}"]')
        assert row.locator('[data-field="result"] strong').inner_text() == prediction.top_class_name
        assert row.locator(".pct").inner_text() == f"{round(prediction.top_probability * 100)} %"
        assert ("⚠ Suspicious" in row.inner_text()) == prediction.is_malignant
    # Every thumbnail loads from the owner-only image URL.
    page.wait_for_function("() => [...document.querySelectorAll('#batch img.thumb')].every(i => i.naturalWidth > 0)")
    widths = page.locator("#batch img.thumb").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [160] * 5
    screenshot(page, "batch")


def open_file_chooser_with_space(page):
    """Press Space on the focused file input and return the file chooser it opens.

    Playwright asks the browser to intercept file choosers without waiting for the answer,
    so a key press sent right after `expect_file_chooser` can reach a page that still opens
    a native (headless: invisible) dialog, and the event never comes (puppeteer#6040). The
    listener goes on first, a round trip makes sure the browser has it, and a press whose
    chooser was lost that way is repeated.
    """
    choosers = []

    def collect(chooser):
        choosers.append(chooser)

    page.on("filechooser", collect)
    try:
        page.evaluate("0")
        for _ in range(3):
            page.keyboard.press("Space")
            for _ in range(50):
                if choosers:
                    return choosers[0]
                page.wait_for_timeout(100)
        raise AssertionError("Space on the focused file input opened no file chooser")
    finally:
        page.remove_listener("filechooser", collect)


def test_a_keyboard_user_chooses_removes_and_uploads_files(page, live_server, celery_worker, owner, active_tiny_model):
    log_in(page, live_server.url, "alice", "alice-password-1")
    files = [{"name": f"k{n}.png", "mimeType": "image/png", "buffer": lesion_png(seed=40 + n)} for n in range(3)]

    page.locator("body").focus()
    for _ in range(20):  # Tab through the page until the file input has the focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id_files":
            break
    assert page.evaluate("document.activeElement.id") == "id_files"
    assert page.evaluate("getComputedStyle(document.getElementById('dropzone')).outlineStyle") == "solid"
    open_file_chooser_with_space(page).set_files(files)

    assert listed_files(page) == ["k0.png", "k1.png", "k2.png"]
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # past the first Remove button to the second
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Remove k1.png"
    page.keyboard.press("Enter")
    assert listed_files(page) == ["k0.png", "k2.png"]
    # The focus stays in the list, on the Remove button that took the removed one's place.
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Remove k2.png"

    page.get_by_role("button", name="Upload and classify").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/batches/*/")
    wait_for_the_whole_batch(page, 2)
    assert sorted(page.locator("#batch .file-name").all_inner_texts()) == ["k0.png", "k2.png"]


def test_without_javascript_the_plain_file_input_uploads_a_batch(
    chromium_browser, live_server, celery_worker, owner, active_tiny_model
):
    context = chromium_browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, live_server.url, "alice", "alice-password-1")
        assert page.locator("[data-dropzone-hint]").is_hidden()  # no promise of a drop zone that cannot work
        files = [{"name": f"nojs{n}.png", "mimeType": "image/png", "buffer": lesion_png(seed=70 + n)} for n in range(2)]
        page.get_by_label("Dermatoscopic images").set_input_files(files)
        page.get_by_role("button", name="Upload and classify").click()
        page.wait_for_url("**/batches/*/")
        assert sorted(page.locator("#batch .file-name").all_inner_texts()) == ["nojs0.png", "nojs1.png"]
        assert page.locator("#batch-progress").get_attribute("max") == "2"
    finally:
        context.close()


def shown_order(page) -> list[int]:
    return [
        int(pk) for pk in page.locator("#batch tbody tr").evaluate_all("rows => rows.map(r => r.dataset.prediction)")
    ]


def test_rows_move_into_attention_order_as_results_arrive(page, live_server, owner):
    batch = make_batch(owner)
    names = ["forearm-l.png", "back-upper.png", "shin-r.png", "scalp.png", "neck.png", "cheek-l.png"]
    queued = [
        make_prediction(owner, status="queued", image=lesion_image(owner, 50 + n, batch=batch, original_filename=name))
        for n, name in enumerate(names)
    ]
    log_in(page, live_server.url, "alice", "alice-password-1")
    page.goto(f"{live_server.url}/batches/{batch.pk}/")
    assert page.locator("#batch-count").inner_text() == "0 of 6 classified."

    def finish(prediction, **fields):
        fields.setdefault("status", "done")
        Prediction.objects.filter(pk=prediction.pk).update(**fields)

    nevus = {"top_class": "nv", "top_probability": 0.91, "is_malignant": False}
    finish(queued[0], **nevus, malignant_probability=0.04)
    finish(queued[1], top_class="mel", top_probability=0.55, is_malignant=True, malignant_probability=0.71)
    finish(queued[2], status="failed", error="The stored image could not be read.")
    page.wait_for_function("() => document.getElementById('batch-progress').value === 3")
    assert page.locator("#batch-count").inner_text() == "3 of 6 classified."
    assert shown_order(page)[:3] == [queued[1].pk, queued[2].pk, queued[0].pk]  # pending ones last

    finish(queued[3], top_class="bcc", top_probability=0.62, is_malignant=True, malignant_probability=0.88)
    finish(queued[4], top_class="bkl", top_probability=0.38, is_malignant=False, malignant_probability=0.3,
           is_uncertain=True)  # fmt: skip
    finish(queued[5], **nevus, malignant_probability=0.12, is_out_of_distribution=True)
    wait_for_the_whole_batch(page, 6)

    expected = [queued[3], queued[1], queued[4], queued[5], queued[2], queued[0]]
    assert shown_order(page) == [p.pk for p in expected]
    assert shown_order(page) == [p.pk for p in Prediction.by_attention(Prediction.objects.filter(image__batch=batch))]
    assert (
        page.locator("#batch-count").inner_text()
        == "All 6 finished: 2 flagged as suspicious, 1 could not be classified."
    )
    failed_row = page.locator(f'tr[data-prediction="{queued[2].pk}"]')
    assert "The stored image could not be read." in failed_row.inner_text()
    assert "Uncertain" in page.locator(f'tr[data-prediction="{queued[4].pk}"]').inner_text()
    assert "Not like a dermatoscopic image" in page.locator(f'tr[data-prediction="{queued[5].pk}"]').inner_text()
    screenshot(page, "batch-in-attention-order")
