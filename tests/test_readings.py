"""One rule everywhere: a picture out of distribution gets no reading (no class, no flag) on every page,
in the CSV and in the API; a reading's flag is told in clinical words with the card's figures."""

from __future__ import annotations

import pytest

from classifier.models import ModelVersion, Prediction
from tests.factories import make_batch, make_image, make_prediction
from tests.signing_in import verified_login

pytestmark = pytest.mark.django_db

V3_LIKE_CARD = {
    "metrics": {
        "test": {
            "malignant_threshold": 0.21,
            "malignant_sensitivity_at_threshold": 0.8407,
            "malignant_specificity_at_threshold": 0.7227,
        }
    },
    "operating_points": {
        "points": [
            {"target_sensitivity": 0.85, "threshold": 0.3023, "val": {"sensitivity": 0.85, "specificity": 0.78},
             "test": {"sensitivity": 0.79, "specificity": 0.785}},
            {"target_sensitivity": 0.95, "threshold": 0.1224, "val": {"sensitivity": 0.95, "specificity": 0.60}},
        ]
    },
}  # fmt: skip


@pytest.fixture
def version():
    return ModelVersion.objects.create(name="v-card", directory="v-card", card=V3_LIKE_CARD, malignant_threshold=0.21)


def out_of_distribution(owner, **fields):
    return make_prediction(owner, status="done", top_class="bkl", top_probability=0.37, malignant_probability=0.4,
                           is_malignant=None, is_out_of_distribution=True, ood_score=3.2, **fields)  # fmt: skip


def test_the_worker_stores_no_flag_for_an_out_of_distribution_picture(version):
    probabilities = {"akiec": 0.3, "bcc": 0.3, "bkl": 0.1, "df": 0.1, "mel": 0.1, "nv": 0.05, "vasc": 0.05}

    out = Prediction.done_fields(version, probabilities, 0.7, 5.0, is_out_of_distribution=True)
    read = Prediction.done_fields(version, probabilities, 0.7, 5.0, is_out_of_distribution=False)

    assert out["is_malignant"] is None
    assert read["is_malignant"] is True
    assert out["malignant_threshold"] == read["malignant_threshold"] == 0.21


def test_the_batch_page_gives_an_out_of_distribution_picture_no_label_and_no_flag(owner_web, owner):
    batch = make_batch(owner)
    out_of_distribution(owner, image=make_image(owner, batch=batch, original_filename="blank.png"))

    page = owner_web.get(f"/batches/{batch.pk}/").content.decode()

    assert "Not assessed:" in page and "Not like a dermatoscopic image" in page
    assert "Benign keratosis" not in page
    assert "Suspicious" not in page and "Not flagged" not in page and "score 40 %" not in page


def test_the_history_gives_an_out_of_distribution_picture_no_label_and_no_flag(owner_web, owner):
    out_of_distribution(owner, image=make_image(owner, original_filename="blank.png"))

    page = owner_web.get("/history/").content.decode()
    rows = page[page.index("<tbody") : page.index("</tbody>")]  # not the filter form's class list
    by_class = owner_web.get("/history/?top_class=bkl").content.decode()

    assert "Not assessed:" in rows and "Benign keratosis" not in rows and "Suspicious" not in rows
    assert "blank.png" not in by_class  # no reading, so no class to match


def test_the_api_gives_an_out_of_distribution_picture_no_reading_but_keeps_the_raw_output(owner_api, owner):
    prediction = out_of_distribution(owner)

    body = owner_api.get(f"/api/v1/predictions/{prediction.pk}/").json()

    assert body["has_reading"] is False
    assert [body[key] for key in ("top_class", "top_class_name", "top_probability", "is_malignant")] == [None] * 4
    assert body["is_out_of_distribution"] is True
    assert body["probabilities"]["bkl"] == pytest.approx(0.7)
    assert body["malignant_probability"] == pytest.approx(0.4)


def test_a_reading_has_its_class_and_flag_in_the_api(owner_api, owner, version):
    prediction = make_prediction(owner, status="done", top_class="mel", malignant_probability=0.96,
                                 is_malignant=True, is_out_of_distribution=False, model_version=version)  # fmt: skip

    body = owner_api.get(f"/api/v1/predictions/{prediction.pk}/").json()

    assert body["has_reading"] is True
    assert (body["top_class"], body["top_class_name"], body["is_malignant"]) == ("mel", "Melanoma", True)
    assert body["malignant_threshold"] == 0.21
    assert body["flag_figures"] == {"threshold": 0.21, "sensitivity": 0.8407, "false_alarm_rate": 0.2773,
                                    "measured_on": "test"}  # fmt: skip


# --- what the flag means, in the card's figures


def test_flag_figures_come_from_the_operating_point_with_that_threshold(version):
    assert version.flag_figures(0.3023).as_dict() == {
        "threshold": 0.3023, "sensitivity": 0.79, "false_alarm_rate": 0.215, "measured_on": "test"}  # fmt: skip
    # A point without test figures says it is validation's.
    assert version.flag_figures(0.1224).measured_on == "val"
    assert version.flag_figures(0.1224).false_alarm_rate == pytest.approx(0.40)
    # The card's own threshold falls back to its test metrics; an unknown one has no figures.
    assert version.flag_figures(0.21).sensitivity == 0.8407
    assert version.flag_figures(0.5) is None
    assert version.flag_figures(None) is None


def test_the_result_page_says_what_the_flag_means_in_one_unit(owner_web, owner, version):
    prediction = make_prediction(owner, status="done", top_class="mel", malignant_probability=0.964,
                                 is_malignant=True, model_version=version, malignant_threshold=0.21)  # fmt: skip

    page = " ".join(owner_web.get(f"/predictions/{prediction.pk}/").content.decode().split())

    assert 'Malignancy score <strong><span data-field="malignant_probability">96.4</span> %</strong>' in page
    assert 'Flagged as suspicious from <span data-field="malignant_threshold">21.0</span> %' in page
    assert ("At this threshold the model caught about 84 % of malignant lesions and also flagged about 28 % of "
            "benign ones (held-out test images of HAM10000, not from your clinic).") in page  # fmt: skip
    assert "P(akiec)" not in page and "0.964" not in page


def test_the_result_page_shows_the_clinical_details_a_link_to_the_batch_and_the_note(owner_web, owner):
    batch = make_batch(owner)
    image = make_image(owner, batch=batch, age=54, sex="female", site="back", clinician_note="seen in June")
    prediction = make_prediction(owner, image=image, status="done", top_class="nv")

    page = owner_web.get(f"/predictions/{prediction.pk}/").content.decode()

    assert "<dt>Age</dt><dd>54</dd>" in page and "<dd>Female</dd>" in page and "<dd>Back</dd>" in page
    assert f'href="/batches/{batch.pk}/"' in page
    assert "seen in June" in page and f'action="/images/{image.pk}/note/"' in page


def test_a_note_saved_from_the_result_page_returns_to_it(owner_web, owner):
    prediction = make_prediction(owner, status="done", top_class="nv")
    url = f"/predictions/{prediction.pk}/"

    response = owner_web.post(f"/images/{prediction.image.pk}/note/", {"clinician_note": "biopsy booked", "next": url})

    assert response.status_code == 302 and response["Location"] == url
    prediction.image.refresh_from_db()
    assert prediction.image.clinician_note == "biopsy booked"


def test_an_admin_looking_at_a_clinicians_result_gets_no_note_form(client, owner, django_user_model):
    admin = django_user_model.objects.create_user("root", password="root-password-1", is_staff=True)
    prediction = make_prediction(owner, status="done", top_class="nv", image=make_image(owner, clinician_note="mine"))
    verified_login(client, admin)

    page = client.get(f"/predictions/{prediction.pk}/").content.decode()

    assert "note-form" not in page and "mine" not in page


def test_a_batch_finished_before_its_page_loads_says_so_without_waiting_for_a_poll(owner_web, owner):
    batch = make_batch(owner)
    make_prediction(owner, status="done", top_class="mel", is_malignant=True, image=make_image(owner, batch=batch))
    make_prediction(owner, status="done", image=make_image(owner, batch=batch))
    make_prediction(owner, status="failed", error="unreadable", image=make_image(owner, batch=batch))

    page = owner_web.get(f"/batches/{batch.pk}/").content.decode()
    assert "All 3 finished: 1 flagged as suspicious, 1 could not be classified.</p>" in page

    make_prediction(owner, status="queued", image=make_image(owner, batch=batch))
    page = owner_web.get(f"/batches/{batch.pk}/").content.decode()
    assert "3 of 4 classified.</p>" in page
