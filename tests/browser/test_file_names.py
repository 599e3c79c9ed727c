"""File names in the clinician's lists stay whole on a desktop screen: a table never squeezes one mid-name."""

from __future__ import annotations

import pytest

from tests.browser.conftest import lesion_image, log_in
from tests.factories import make_batch, make_prediction

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LINES_OF_EACH = """names => names.map(
    n => Math.round(n.getBoundingClientRect().height / parseFloat(getComputedStyle(n).lineHeight)))"""
NAMES = ["IMG_20250601_103211.jpg", "left-upper-arm_lesion-3.png", "dermoscopy-0001.tiff"]


def test_ordinary_file_names_are_not_broken_in_the_batch_and_history_tables(page, live_server, owner):
    batch = make_batch(owner)
    for n, name in enumerate(NAMES):
        image = lesion_image(owner, n, batch=batch, original_filename=name, clinician_note="Seen at the clinic; " * 6)
        make_prediction(owner, image=image, status="done", top_class="nv", is_malignant=False,
                        is_out_of_distribution=False, malignant_probability=0.05)  # fmt: skip
    log_in(page, live_server.url, "alice", "alice-password-1")

    for url in (f"/batches/{batch.pk}/", "/history/"):
        page.goto(f"{live_server.url}{url}")
        lines = page.locator("td .file-name").evaluate_all(LINES_OF_EACH)
        assert lines == [1, 1, 1], url
