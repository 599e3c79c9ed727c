"""A clinician follows a lesion in the browser: a new patient, a lesion placed on the body map by a click,
two visits uploaded from the lesion's row (one chosen, one dropped) and read by a real worker, the
timeline with a change flag, the two visits side by side (zoom one, the other follows), the PDF; and a
member of another clinic gets 404 at every one of those addresses."""

from __future__ import annotations

import datetime as dt
import io

import pypdf
import pytest
from django.utils import timezone
from PIL import Image

from classifier.lib.bodymap import default_point
from classifier.models import Lesion, Patient, Prediction
from tests.browser.conftest import SCREENSHOT_DIR, drop_files, log_in, screenshot
from tests.conftest import wait_for
from tests.images import dermoscopy_like_png
from tests.signing_in import enrolled_phone

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def element_screenshot(locator, name: str) -> None:
    """One part of the page, for the README (a full page of a lesion is too long to read there)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"))


def visit_pictures(seed: int = 4, size=(400, 300), growth: float = 1.2) -> tuple[bytes, bytes]:
    """Two drawn pictures of one lesion (no patient data): the second framed alike, the lesion grown by ``growth``."""
    earlier = dermoscopy_like_png(seed, size)
    with Image.open(io.BytesIO(earlier)) as picture:
        width, height = picture.size
        crop = (width * (1 - 1 / growth) / 2, height * (1 - 1 / growth) / 2)
        grown = picture.crop((crop[0], crop[1], width - crop[0], height - crop[1])).resize(picture.size)
    buffer = io.BytesIO()
    grown.save(buffer, "PNG")
    return earlier, buffer.getvalue()


def picture_widths(page) -> list[float]:
    return [page.locator(".compare .viewer img").nth(i).bounding_box()["width"] for i in range(2)]


def test_a_clinician_follows_a_lesion_from_the_body_map_to_the_pdf(
    page, chromium_browser, live_server, celery_worker, owner, outsider, active_tiny_model, tmp_path
):
    base = live_server.url
    log_in(page, base, "alice", "alice-password-1")

    # A new patient.
    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_label("Reference").last.fill("MRN-2041")
    page.get_by_label("Year of birth").fill("1968")
    page.get_by_label("Skin type (Fitzpatrick)").select_option("III")
    page.get_by_role("button", name="Add patient").click()
    page.wait_for_url(f"{base}/patients/*/")
    patient = Patient.objects.get(reference="MRN-2041")

    # A click on the back view, on the patient's left shoulder blade, places the lesion there.
    back = page.locator('svg[data-view="back"]')
    box = back.bounding_box()
    aim = default_point("back", "left")
    page.mouse.click(box["x"] + aim.x * box["width"], box["y"] + aim.y * box["height"])
    assert page.get_by_label("Body site").input_value() == "back"
    assert page.get_by_label("Side", exact=True).input_value() == "left"
    page.get_by_label("Label").fill("L1, left scapula")
    page.get_by_role("button", name="Add lesion").click()
    page.wait_for_url(f"{base}/patients/{patient.pk}/#lesion-*")
    lesion = Lesion.objects.get(patient=patient)
    assert (lesion.site, lesion.side, lesion.map_view) == ("back", "left", "back")
    assert lesion.map_x == pytest.approx(aim.x, abs=0.01) and lesion.map_y == pytest.approx(aim.y, abs=0.01)
    assert back.get_by_role("link", name="L1, left scapula: no reading").is_visible()

    # The first visit, six months ago: chosen with the row's file input.
    before, after = visit_pictures()
    first = tmp_path / "visit-1.png"
    first.write_bytes(before)
    row = page.locator(f"#lesion-{lesion.pk}")
    row.get_by_label("Pictures of a visit of L1, left scapula").set_input_files(str(first))
    row.get_by_label("Taken on (L1, left scapula)").fill((timezone.localdate() - dt.timedelta(days=182)).isoformat())
    row.get_by_role("button", name="Upload visit of L1, left scapula").click()
    page.wait_for_url(f"{base}/patients/{patient.pk}/#lesion-{lesion.pk}")
    assert page.get_by_text("1 picture of L1, left scapula uploaded").is_visible()

    # The second, today: dropped on the lesion's row, which sends it at once.
    with page.expect_navigation():
        drop_files(page, f"#lesion-{lesion.pk}", [("visit-2.png", after, "image/png")])
    assert lesion.images.count() == 2

    # The real worker reads both; the page says when, and shows them on request.
    wait_for(lambda: lesion.images.filter(latest_prediction__status="done").count() == 2, timeout=90)
    page.goto(f"{base}/patients/{patient.pk}/")
    earlier, later = (image.latest_prediction for image in lesion.images.order_by("taken_at"))
    assert earlier.model_version.name == later.model_version.name == "tiny-v1"
    # The tiny test model's scores are noise, so the rise that raises the flag is set here: the second
    # reading's score goes 0.3 above the first's. Everything else (uploads, readings, pages) is real.
    Prediction.objects.filter(pk=later.pk).update(
        malignant_probability=min(1.0, earlier.malignant_probability + 0.3), is_malignant=True
    )
    page.reload()
    assert row.locator('[data-flag="score-rose"]').is_visible()
    assert back.get_by_role("link", name="L1, left scapula: suspicious for malignancy").is_visible()
    screenshot(page, "patient-page")

    # The lesion page: the timeline in date order with the flag at the second visit, the chart.
    row.get_by_role("link", name="L1, left scapula").first.click()
    page.wait_for_url(f"{base}/lesions/{lesion.pk}/")
    visits = page.locator("table.timeline tbody tr")
    assert visits.count() == 2
    assert visits.nth(1).locator('[data-flag="score-rose"]').is_visible()
    assert not visits.nth(0).locator("[data-flag]").count()
    assert page.locator("svg.score-chart").is_visible()
    # The legend's entries are spaced for its own 11 px text: the page's stylesheets must not enlarge it.
    legend = page.evaluate("""Array.from(document.querySelectorAll("svg.score-chart .legend text")).map((text) =>
        [text.getBBox().x, text.getBBox().x + text.getBBox().width, getComputedStyle(text).fontSize])""")
    assert [size for _, _, size in legend] == ["11px", "11px"], legend  # the version, and "flagged as suspicious"
    assert legend[0][1] < legend[1][0], legend  # side by side, not one over the other
    element_screenshot(page.locator("main section").filter(has=page.locator("#timeline-heading")), "lesion-timeline")

    # Side by side: zoom the earlier picture, the later one follows.
    fitted = picture_widths(page)
    page.get_by_role("button", name=f"Zoom in ({timezone.localtime(earlier.image.taken_at):%Y-%m-%d})").click()
    zoomed = picture_widths(page)
    assert zoomed[0] == pytest.approx(1.5 * fitted[0], abs=2)
    assert zoomed[1] == pytest.approx(1.5 * fitted[1], abs=2)
    element_screenshot(page.locator("main section").filter(has=page.locator("#compare-heading")), "lesion-comparison")

    # The lesion's PDF report.
    with page.expect_download() as download:
        page.get_by_role("link", name="PDF report of L1, left scapula").click()
    document = pypdf.PdfReader(io.BytesIO(download.value.path().read_bytes()))
    text = " ".join(" ".join(p.extract_text().split()) for p in document.pages)
    assert len(document.pages) == 1
    assert "MRN-2041" in text and "L1, left scapula" in text and "Malignancy score rose" in text

    # A member of another clinic: 404 at every address the clinician used.
    urls = [f"/patients/{patient.pk}/", f"/lesions/{lesion.pk}/", f"/patients/{patient.pk}/report.pdf",
            f"/lesions/{lesion.pk}/report.pdf", f"/predictions/{later.pk}/", f"/images/{later.image_id}/file/",
            f"/api/v1/lesions/{lesion.pk}/report.pdf"]  # fmt: skip
    stranger = chromium_browser.new_context()
    try:
        other = stranger.new_page()
        log_in(other, base, "bob", "bob-password-1")
        for url in urls:
            assert other.request.get(f"{base}{url}").status == 404, url
    finally:
        stranger.close()


def test_a_keyboard_user_places_a_lesion_from_the_site_lists(page, live_server, owner, clinic):
    patient = Patient.objects.create(clinic=clinic, reference="MRN-7")
    log_in(page, live_server.url, "alice", "alice-password-1")
    page.goto(f"{live_server.url}/patients/{patient.pk}/")

    page.get_by_label("Body site").focus()
    page.get_by_label("Body site").select_option("chest")
    page.keyboard.press("Tab")
    page.get_by_label("Side", exact=True).select_option("right")
    page.get_by_label("Label").fill("L2, right chest")
    page.get_by_label("Label").press("Enter")

    page.wait_for_url(f"{live_server.url}/patients/{patient.pk}/#lesion-*")
    lesion = Lesion.objects.get(patient=patient)
    expected = default_point("chest", "right")
    assert (lesion.map_view, lesion.map_x, lesion.map_y) == (expected.view, expected.x, expected.y)
    assert page.locator('svg[data-view="front"]').get_by_role("link", name="L2, right chest: no reading").is_visible()


# The elements that stick out past the screen's right edge, named in a failure (tag.class#id right-edge).
OVERFLOWING = """() => {
    const edge = document.documentElement.clientWidth + 1;
    return Array.from(document.querySelectorAll("body *"))
        .filter((e) => e.getBoundingClientRect().right > edge).slice(0, 12)
        .map((e) => `${e.tagName}.${e.className}#${e.id} ${Math.round(e.getBoundingClientRect().right)}`);
}"""


def test_the_patient_pages_fit_a_375_px_screen(chromium_browser, live_server, manager, clinic):
    from tests.browser.conftest import has_horizontal_scroll, lesion_image
    from tests.factories import make_lesion, make_prediction

    patient = Patient.objects.create(clinic=clinic, reference="MRN-0000000000000000000000000000000000000000000042",
                                     note="Atypical naevus syndrome; yearly full-body photography.")  # fmt: skip
    lesion = make_lesion(patient, site="back", side="left", label="L1_left-scapula_irregular-border_seen-2026",
                         map_view="back", map_x=0.4, map_y=0.3)  # fmt: skip
    grid = [[0.2 * col for col in range(5)] for _ in range(5)]
    for n, score in enumerate((0.2, 0.6)):
        image = lesion_image(manager, n, lesion=lesion, taken_at=timezone.now() - dt.timedelta(days=90 * (1 - n)))
        make_prediction(manager, image=image, status="done", top_class="mel", malignant_probability=score,
                        is_malignant=score > 0.5, explanation={"method": "grad-cam", "grid": grid,
                                                               "box": [0.125, 0, 0.875, 1]})  # fmt: skip
    context = chromium_browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        enrolled_phone(manager)  # managers sign in with a second factor
        log_in(page, live_server.url, "mary", "mary-password-1")
        for url in ("/patients/", f"/patients/{patient.pk}/", f"/lesions/{lesion.pk}/",
                    f"/patients/{patient.pk}/export/", f"/patients/{patient.pk}/erase/"):  # fmt: skip
            page.goto(f"{live_server.url}{url}")
            assert not has_horizontal_scroll(page), (url, page.evaluate(OVERFLOWING))
    finally:
        context.close()


def test_the_page_says_when_pending_readings_arrive_and_shows_them(page, live_server, owner, clinic):
    from tests.factories import make_lesion, make_visit

    patient = Patient.objects.create(clinic=clinic, reference="MRN-8")
    lesion = make_lesion(patient, site="back", side="left", label="L1", map_view="back", map_x=0.4, map_y=0.3)
    image = make_visit(owner, lesion, timezone.now(), score=None)
    log_in(page, live_server.url, "alice", "alice-password-1")
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    status = page.locator("[data-readings-status]")
    assert "Waiting for 1 reading from the model" in status.inner_text()

    # The worker's part, done by hand: this test is about the page, not the model.
    probabilities = {code: 0.05 for code in ("akiec", "bcc", "bkl", "df", "nv", "vasc")} | {"mel": 0.7}
    Prediction.objects.filter(pk=image.latest_prediction_id).update(
        status="done", top_class="mel", top_probability=0.7, probabilities=probabilities,
        malignant_probability=0.8, is_malignant=True, finished_at=timezone.now(),
    )  # fmt: skip
    page.get_by_role("button", name="Show the new readings").click()

    page.locator(".lesion-state", has_text="⚠ Suspicious · Melanoma, 70 %").wait_for()
    assert page.locator('svg[data-view="back"]').get_by_role("link", name="L1: suspicious for malignancy").is_visible()
