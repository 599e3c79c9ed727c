"""History in Chromium: search and filter, export what is shown as CSV, and write a note on an image."""

from __future__ import annotations

import csv
import datetime
import re

import pytest
from django.utils import timezone

from classifier.models import LesionImage
from tests.browser.conftest import lesion_image, log_in, screenshot
from tests.factories import make_image, make_prediction

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def lesion(owner, name: str, seed: int, minutes_ago: int, **fields) -> LesionImage:
    uploaded = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    return lesion_image(owner, seed, original_filename=name, created_at=uploaded, **fields)


def reading(image, top_class: str, top: float, malignant: float, flagged: bool, **fields):
    return make_prediction(image.owner, status="done", top_class=top_class, image=image, top_probability=top,
                           malignant_probability=malignant, is_malignant=flagged, **fields)  # fmt: skip


@pytest.fixture
def history(owner, outsider):
    """Eight of the owner's uploads, three of them of the left arm, and an outsider's (another clinic's)."""
    arm_mel = lesion(owner, "left-arm-2025-01.png", 1, 300)
    reading(arm_mel, "mel", 0.58, 0.74, True)
    arm_bcc = lesion(owner, "left-arm-2025-03.png", 2, 200, clinician_note="Biopsy booked")
    reading(arm_bcc, "bcc", 0.81, 0.93, True)
    arm_nv = lesion(owner, "left-arm-2025-06.png", 3, 100)
    reading(arm_nv, "nv", 0.88, 0.06, False)
    back = lesion(owner, "back-1.png", 4, 90, clinician_note="Patient worried: the LEFT ARM lesion grew")
    reading(back, "bkl", 0.44, 0.31, False, is_uncertain=True)
    for n, (code, flagged) in enumerate([("nv", False), ("vasc", False), ("akiec", True)]):
        reading(lesion(owner, f"clinic-{n}.png", 10 + n, 50 - n), code, 0.7, 0.8 if flagged else 0.1, flagged)
    make_prediction(owner, image=lesion(owner, "waiting.png", 20, 1), status="queued")
    bobs = lesion(outsider, "left-arm-bob.png", 30, 10)
    reading(bobs, "mel", 0.9, 0.95, True)
    return {"arm_mel": arm_mel, "arm_bcc": arm_bcc, "arm_nv": arm_nv, "back": back}


FILTERED = re.compile(r"/history/\?q=LEFT-ARM&.*malignant=yes.*&sort=malignant$")


def rows(page) -> list[str]:
    return page.locator("table.history tbody .file-name").all_inner_texts()


def test_a_clinician_filters_their_history_exports_it_and_writes_a_note(page, live_server, owner, history, tmp_path):
    log_in(page, live_server.url, "alice", "alice-password-1")
    page.get_by_role("link", name="History").click()
    assert len(rows(page)) == 8 and "left-arm-bob.png" not in rows(page)

    page.get_by_label("Search", exact=True).fill("left arm")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"/history/\?q=left\+arm&"))
    # The file names say left-arm, the note on back-1.png says LEFT ARM: only the note matches "left arm".
    assert rows(page) == ["back-1.png"]

    page.get_by_label("Search", exact=True).fill("LEFT-ARM")
    page.get_by_label("Malignancy flag").select_option(label="Flagged")
    page.get_by_label("Sort").select_option(label="Most suspicious first")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(FILTERED)

    assert rows(page) == ["left-arm-2025-03.png", "left-arm-2025-01.png"]
    assert page.get_by_text("2 images match.").is_visible()

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    assert download.value.suggested_filename.startswith("lesionsite-history-")
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    with open(saved, newline="", encoding="utf-8-sig") as handle:
        exported = list(csv.DictReader(handle))
    assert [(row["file_name"], row["top_class_name"], row["malignancy_flag"]) for row in exported] == [
        ("left-arm-2025-03.png", "Basal cell carcinoma", "yes"),
        ("left-arm-2025-01.png", "Melanoma", "yes"),
    ]
    assert exported[0]["clinician_note"] == "Biopsy booked" and exported[0]["malignant_probability"] == "0.93"

    page.get_by_role("link", name="Add note on left-arm-2025-01.png").click()
    page.get_by_label("Note").fill("Dermoscopy follow-up in 3 months; compare with left-arm-2025-03.")
    page.get_by_role("button", name="Save note").click()

    page.wait_for_url(FILTERED)  # back where the clinician was
    assert page.get_by_role("status").filter(has_text="Note saved for left-arm-2025-01.png.").is_visible()
    row = page.locator("tr", has_text="left-arm-2025-01.png")
    assert "Dermoscopy follow-up in 3 months" in row.inner_text()
    history["arm_mel"].refresh_from_db()
    assert history["arm_mel"].clinician_note.startswith("Dermoscopy follow-up")
    screenshot(page, "history")


def test_history_pages_keep_the_filters(page, live_server, owner):
    for n in range(23):
        make_prediction(owner, image=make_image(owner, original_filename=f"arm-{n:02d}.png"), status="queued")
    make_prediction(owner, image=make_image(owner, original_filename="leg.png"), status="queued")
    log_in(page, live_server.url, "alice", "alice-password-1")
    page.goto(f"{live_server.url}/history/?q=arm&sort=oldest")

    page.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r"page=2$"))

    assert page.get_by_label("Search", exact=True).input_value() == "arm"
    assert page.get_by_label("Sort").input_value() == "oldest"
    assert page.locator("table.history tbody .file-name").all_inner_texts() == [
        "arm-20.png",
        "arm-21.png",
        "arm-22.png",
    ]
