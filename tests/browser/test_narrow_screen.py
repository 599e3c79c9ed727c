"""At a phone's width (375 px) the clinician's pages fit: no horizontal scrolling of the page itself."""

from __future__ import annotations

import pytest

from classifier.models import ModelVersion, UploadBatch
from tests.browser.conftest import drop_files, has_horizontal_scroll, lesion_image, lesion_png, log_in, screenshot
from tests.factories import make_batch, make_image, make_prediction

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 375, "height": 812}
# An unbroken name, the kind a camera or PACS export produces: it must wrap, not widen the page.
LONG_NAME = "DERMATOSCOPY_EXPORT_2025-06-01T10-32-11_patient-000123456789_left-upper-arm_lesion-3_polarised.png"


@pytest.fixture
def phone(chromium_browser):
    context = chromium_browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def real_reading(top: str, p_top: float) -> dict:
    """Probabilities as a confident model gives them: the widest bar the result page can draw."""
    rest = (1 - p_top) / 6
    return {code: (p_top if code == top else rest) for code in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")}


def finished_batch(owner) -> UploadBatch:
    version = ModelVersion.objects.create(name="mobilenetv2-150-v9", directory="x", card={}, malignant_threshold=0.21)
    batch = make_batch(owner)
    readings = [("mel", True, 0.995), ("nv", False, 0.07), ("bkl", False, 0.22)]
    grid = [[0.2 * col for col in range(5)] for _ in range(5)]
    for n, (code, flagged, score) in enumerate(readings):
        name = LONG_NAME if n == 0 else f"lesion-{n}.png"
        image = lesion_image(owner, n, batch=batch, original_filename=name, clinician_note="Seen at the clinic; " * 4,
                             age=71, sex="female", site="upper extremity")  # fmt: skip
        probabilities = real_reading(code, 0.995 if n == 0 else 0.6)
        make_prediction(owner, status="done", top_class=code, image=image, is_malignant=flagged,
                        probabilities=probabilities, top_probability=probabilities[code],
                        malignant_probability=score, is_uncertain=code == "bkl", is_out_of_distribution=False,
                        model_version=version, malignant_threshold=0.21,
                        explanation={"method": "grad-cam", "class": code, "grid": grid,
                                     "box": [0.125, 0, 0.875, 1]})  # fmt: skip
    make_prediction(owner, status="done", top_class="bkl", image=lesion_image(owner, 7, batch=batch), is_malignant=None,
                    is_out_of_distribution=True, ood_score=4.2, model_version=version)  # fmt: skip
    make_prediction(owner, status="failed", error="The stored image could not be read.",
                    image=make_image(owner, batch=batch, original_filename="broken.png"))  # fmt: skip
    return batch


def test_the_clinicians_pages_fit_a_375_px_screen(phone, live_server, owner):
    page = phone
    page.goto(f"{live_server.url}/login/")
    assert not has_horizontal_scroll(page), "login"
    log_in(page, live_server.url, "alice", "alice-password-1")
    batch = finished_batch(owner)
    image = batch.images.order_by("id").first()
    out_of_distribution = batch.images.get(predictions__is_out_of_distribution=True)

    drop_files(page, "#dropzone", [(LONG_NAME, lesion_png(seed=9), "image/png")])
    assert page.locator("#file-list .file-name").all_inner_texts() == [LONG_NAME]
    assert not has_horizontal_scroll(page), "upload with a long file name listed"

    for name, url in [
        ("history", "/history/"),
        ("history-filtered", "/history/?q=lesion&date_from=2001-01-01&sort=malignant"),
        ("batch", f"/batches/{batch.pk}/"),
        ("note", f"/images/{image.pk}/note/"),
        ("result", f"/predictions/{image.predictions.get().pk}/"),
        ("result-out-of-distribution", f"/predictions/{out_of_distribution.predictions.get().pk}/"),
        ("api-tokens", "/account/tokens/"),
        ("two-factor-enrolment", "/account/two-factor/"),
    ]:
        page.goto(f"{live_server.url}{url}")
        if name.startswith("result"):
            page.locator('[data-field="status"]', has_text="Done").wait_for()  # filled in by the API's answer
            page.locator("details.probabilities").evaluate("details => { details.open = true; }")
        if name == "result":
            page.get_by_role("button", name="Show heatmap").click()
            page.get_by_role("button", name="Full resolution").click()
        assert not has_horizontal_scroll(page), name
        if name in ("history", "batch", "result", "two-factor-enrolment"):
            screenshot(page, f"{name}-375px")

    # The lists become one card per row: every cell stacked, each with its column's name.
    page.goto(f"{live_server.url}/history/")
    cells = page.locator("table.history tbody td")
    assert set(cells.evaluate_all("cells => cells.map(c => getComputedStyle(c).display)")) == {"flex"}
    labels = cells.evaluate_all("cells => cells.map(c => getComputedStyle(c, '::before').content)")
    assert '"Most likely"' in labels and '"Malignancy"' in labels
    assert page.locator(".table-wrap").evaluate("box => box.scrollWidth <= box.clientWidth")


def test_the_check_would_notice_a_page_that_scrolls_sideways(phone, live_server, owner):
    log_in(phone, live_server.url, "alice", "alice-password-1")
    phone.evaluate("document.querySelector('main').style.minWidth = '600px'")
    assert has_horizontal_scroll(phone)
