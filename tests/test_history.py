"""History: search, filters, sort, pagination, CSV export, and the clinician's own note on an image."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.http import StreamingHttpResponse
from django.utils import timezone

from classifier.history import CSV_COLUMNS, csv_safe
from classifier.models import LesionImage, ModelVersion
from tests.factories import make_image, make_prediction
from tests.signing_in import verified_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user("root", password="root-password-1", is_staff=True)


def shown(client, query: str = "") -> list[int]:
    """The image ids the history page lists for a query string, in page order."""
    response = client.get(f"/history/?{query}")
    assert response.status_code == 200
    ids = [image.pk for image in response.context["page"].object_list]
    page = response.content.decode()
    for pk in ids:  # what the context holds is what the page shows
        assert f'data-image="{pk}"' in page
    return ids


def exported(client, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/history/export.csv?{query}")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def flagged(owner, score: float, **fields):
    return make_prediction(
        owner, status="done", top_class="mel", is_malignant=True, malignant_probability=score, **fields
    )


def benign(owner, score: float, **fields):
    return make_prediction(
        owner, status="done", top_class="nv", is_malignant=False, malignant_probability=score, **fields
    )


# --- Search and filters


def test_search_finds_file_names_and_notes_whatever_their_case(owner_web, owner):
    by_name = make_image(owner, original_filename="Left-Shoulder_2024.PNG")
    by_note = make_image(
        owner, original_filename="img_0001.png", clinician_note="Patient reports itching on the SHOULDER"
    )
    make_image(owner, original_filename="back.png", clinician_note="stable since last visit")

    assert set(shown(owner_web, "q=shoulder")) == {by_name.pk, by_note.pk}
    assert shown(owner_web, "q=ITCHING") == [by_note.pk]
    assert shown(owner_web, "q=nothing-like-this") == []


def test_it_filters_by_the_malignancy_flag(owner_web, owner):
    yes = flagged(owner, 0.8)
    no = benign(owner, 0.1)
    pending = make_prediction(owner, status="queued")

    assert shown(owner_web, "malignant=yes") == [yes.image_id]
    assert shown(owner_web, "malignant=no") == [no.image_id]
    assert set(shown(owner_web, "malignant=")) == {yes.image_id, no.image_id, pending.image_id}


def test_filters_combine(owner_web, owner):
    wanted = flagged(owner, 0.9, image=make_image(owner, original_filename="arm-a.png"))
    flagged(owner, 0.9, image=make_image(owner, original_filename="leg.png"))
    benign(owner, 0.1, image=make_image(owner, original_filename="arm-b.png"))

    assert shown(owner_web, "q=arm&malignant=yes&top_class=mel&status=done") == [wanted.image_id]


def test_it_filters_on_the_latest_prediction_of_an_image(owner_web, owner):
    image = make_image(owner)
    flagged(owner, 0.9, image=image, created_at=timezone.now() - datetime.timedelta(hours=1))
    benign(owner, 0.1, image=image)  # a re-run with a newer model version

    assert shown(owner_web, "malignant=yes") == []
    assert shown(owner_web, "malignant=no") == [image.pk]


def test_a_date_range_backwards_shows_an_error_and_no_rows(owner_web, owner):
    make_prediction(owner)

    response = owner_web.get("/history/?date_from=2026-03-10&date_to=2026-03-01")

    page = response.content.decode()
    assert "The end date is before the start date." in page
    assert list(response.context["page"].object_list) == []


def test_an_unknown_filter_value_is_an_error_not_ignored(owner_web, owner):
    make_prediction(owner)
    response = owner_web.get("/history/?malignant=maybe")
    assert response.context["form"].errors and list(response.context["page"].object_list) == []


# --- Sort


def test_it_sorts_newest_oldest_by_malignancy_and_by_confidence(owner_web, owner):
    now = timezone.now()

    def at(minutes_ago, **prediction):
        image = make_image(owner, created_at=now - datetime.timedelta(minutes=minutes_ago))
        if prediction:
            make_prediction(owner, image=image, **prediction)
        else:
            make_prediction(owner, image=image, status="queued")
        return image.pk

    high = at(30, status="done", top_class="mel", malignant_probability=0.9, top_probability=0.9, is_malignant=True)
    low = at(20, status="done", top_class="nv", malignant_probability=0.05, top_probability=0.95, is_malignant=False)
    unsure = at(10, status="done", top_class="bkl", malignant_probability=0.4, top_probability=0.35, is_malignant=False)
    queued = at(0)

    assert shown(owner_web) == [queued, unsure, low, high]
    assert shown(owner_web, "sort=newest") == [queued, unsure, low, high]
    assert shown(owner_web, "sort=oldest") == [high, low, unsure, queued]
    assert shown(owner_web, "sort=malignant") == [high, unsure, low, queued]  # no score yet: last
    assert shown(owner_web, "sort=confidence") == [unsure, high, low, queued]


# --- Scope and pagination


def test_history_and_its_export_hold_only_the_clinicians_own_images(owner_web, owner, outsider):
    mine = make_prediction(owner, image=make_image(owner, original_filename="mine.png"))
    make_prediction(outsider, image=make_image(outsider, original_filename="bobs.png"))

    assert shown(owner_web) == [mine.image_id]
    assert [row["file_name"] for row in exported(owner_web)] == ["mine.png"]


def test_an_admins_history_and_export_are_their_own_too(client, admin_user, owner):
    own = make_image(admin_user, original_filename="admins-own.png")
    make_image(owner, original_filename="clinicians.png")
    verified_login(client, admin_user)

    assert shown(client) == [own.pk]
    assert [row["file_name"] for row in exported(client)] == ["admins-own.png"]


def test_pagination_keeps_the_filters(owner_web, owner):
    for n in range(23):
        make_image(owner, original_filename=f"arm-{n:02d}.png")
    for n in range(5):
        make_image(owner, original_filename=f"leg-{n}.png")

    first = owner_web.get("/history/?q=arm&sort=oldest")
    page = first.content.decode()

    assert "Page 1 of 2" in page and "23 images match" in page
    assert 'href="?q=arm&amp;sort=oldest&amp;page=2"' in page
    second = owner_web.get("/history/?q=arm&sort=oldest&page=2")
    names = [image.original_filename for image in second.context["page"].object_list]
    assert names == ["arm-20.png", "arm-21.png", "arm-22.png"]


def test_the_export_link_carries_the_filters_but_not_the_page(owner_web, owner):
    for _ in range(21):
        make_image(owner, original_filename="arm.png")
    page = owner_web.get("/history/?q=arm&malignant=&page=2").content.decode()
    assert 'href="/history/export.csv?q=arm&amp;malignant="' in page


def test_history_requires_login(client):
    assert client.get("/history/").status_code == 302
    assert client.get("/history/export.csv").status_code == 302


# --- CSV export


def test_the_export_is_a_streamed_csv_attachment(owner_web, owner):
    make_prediction(owner)
    response = owner_web.get("/history/export.csv")

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="lesionsite-history-')
    assert response["Cache-Control"] == "private, no-store"


def test_the_export_has_every_column_for_each_matching_image(owner_web, owner):
    version = ModelVersion.objects.create(name="v-test", directory="v-test", card={}, malignant_threshold=0.5)
    image = make_image(owner, original_filename="mole.png", age=61, sex="female", site="back", clinician_note="recheck")
    make_prediction(owner, image=image, status="done", top_class="mel", top_probability=0.61234,
                    malignant_probability=0.81, is_malignant=True, is_uncertain=False,
                    is_out_of_distribution=False, model_version=version)  # fmt: skip
    make_prediction(owner, image=make_image(owner, original_filename="other.png"), status="queued")

    rows = exported(owner_web, "q=mole")

    assert list(rows[0].keys()) == CSV_COLUMNS
    assert rows == [
        {
            "image_id": str(image.pk),
            "file_name": "mole.png",
            "uploaded_at": image.created_at.isoformat(),
            "taken_at": image.taken_at.isoformat(),
            "patient": "",
            "lesion_id": "",
            "lesion": "",
            "age": "61",
            "sex": "female",
            "site": "back",
            "status": "done",
            "top_class": "mel",
            "top_class_name": "Melanoma",
            "top_probability": "0.6123",
            "malignant_probability": "0.81",
            "malignancy_flag": "yes",
            "uncertain": "no",
            "out_of_distribution": "no",
            "model_version": "v-test",
            "clinician_note": "recheck",
        }
    ]


def test_an_out_of_distribution_picture_is_exported_without_a_reading(owner_web, owner):
    # The result page gives such a picture no class and no flag; the export says the same.
    image = make_image(owner, original_filename="blank.png")
    make_prediction(owner, image=image, status="done", top_class="bkl", top_probability=0.37,
                    malignant_probability=0.4, is_malignant=None, is_out_of_distribution=True)  # fmt: skip

    (row,) = exported(owner_web, "")

    assert row["out_of_distribution"] == "yes"
    assert [row[key] for key in ("top_class", "top_class_name", "top_probability", "malignant_probability",
                                 "malignancy_flag")] == ["", "", "", "", ""]  # fmt: skip


def test_the_export_follows_the_filters_and_the_sort(owner_web, owner):
    low = flagged(owner, 0.6)
    high = flagged(owner, 0.95)
    benign(owner, 0.1)

    rows = exported(owner_web, "malignant=yes&sort=malignant")

    assert [int(row["image_id"]) for row in rows] == [high.image_id, low.image_id]


def test_the_export_guards_against_formula_injection(owner_web, owner):
    make_image(
        owner, original_filename='=HYPERLINK("http://evil.example","x").png', clinician_note="+cmd|' /C calc'!A0"
    )
    make_image(owner, original_filename="-2+3.png", clinician_note="@SUM(A1:A9)")
    make_image(owner, original_filename="plain.png", clinician_note="a = b + c - d @ e")

    rows = {row["file_name"]: row["clinician_note"] for row in exported(owner_web)}

    assert rows == {
        '\'=HYPERLINK("http://evil.example","x").png': "'+cmd|' /C calc'!A0",
        "'-2+3.png": "'@SUM(A1:A9)",
        "plain.png": "a = b + c - d @ e",  # only a leading character makes a formula
    }


def test_csv_safe_leaves_numbers_and_ordinary_text_alone():
    assert csv_safe(-0.5) == -0.5
    assert csv_safe(3) == 3
    assert csv_safe("\tcmd") == "'\tcmd"
    assert csv_safe("lesion=1") == "lesion=1"
    assert csv_safe("") == ""


def test_the_export_keeps_non_ascii_text(owner_web, owner):
    make_image(owner, original_filename="naevus-épaule.png", clinician_note="Läsion, 3 mm")
    rows = exported(owner_web)
    assert (rows[0]["file_name"], rows[0]["clinician_note"]) == ("naevus-épaule.png", "Läsion, 3 mm")


def test_an_export_with_invalid_filters_is_refused(owner_web, owner):
    make_image(owner)
    response = owner_web.get("/history/export.csv?date_from=not-a-date")
    assert response.status_code == 400
    assert "Fix the filters" in response.content.decode()


# --- The clinician's note


def note_url(image) -> str:
    return f"/images/{image.pk}/note/"


def test_the_owner_adds_a_note_and_returns_to_their_filtered_history(owner_web, owner):
    image = make_image(owner, original_filename="mole.png")

    response = owner_web.post(
        note_url(image), {"clinician_note": "  Compare at next visit.  ", "next": "/history/?q=mo"}
    )

    assert response.status_code == 302 and response["Location"] == "/history/?q=mo"
    image.refresh_from_db()
    assert image.clinician_note == "Compare at next visit."
    page = owner_web.get(response["Location"]).content.decode()
    assert "Note saved for mole.png." in page and "Compare at next visit." in page


def test_the_owner_edits_and_clears_a_note(owner_web, owner):
    image = make_image(owner, clinician_note="first")

    form_page = owner_web.get(note_url(image)).content.decode()
    assert "first</textarea>" in form_page
    owner_web.post(note_url(image), {"clinician_note": "second"})
    image.refresh_from_db()
    assert image.clinician_note == "second"
    owner_web.post(note_url(image), {"clinician_note": ""})
    image.refresh_from_db()
    assert image.clinician_note == ""


def test_a_note_too_long_is_refused_with_a_clear_error(owner_web, owner):
    image = make_image(owner, clinician_note="kept")

    response = owner_web.post(note_url(image), {"clinician_note": "x" * 2001})

    assert response.status_code == 400
    assert "The note is too long: keep it to 2000 characters (it has 2001)." in response.content.decode()
    image.refresh_from_db()
    assert image.clinician_note == "kept"


def test_a_note_of_exactly_the_limit_is_accepted(owner_web, owner):
    image = make_image(owner)
    assert owner_web.post(note_url(image), {"clinician_note": "x" * 2000}).status_code == 302
    image.refresh_from_db()
    assert len(image.clinician_note) == 2000


def test_another_clinician_gets_404_and_changes_nothing(client, outsider, owner):
    image = make_image(owner, clinician_note="owner's")
    client.force_login(outsider)

    assert client.get(note_url(image)).status_code == 404
    assert client.post(note_url(image), {"clinician_note": "bob was here"}).status_code == 404
    image.refresh_from_db()
    assert image.clinician_note == "owner's"


def test_an_admin_cannot_write_a_clinicians_note_either(client, admin_user, owner):
    image = make_image(owner)
    verified_login(client, admin_user)
    assert client.post(note_url(image), {"clinician_note": "admin"}).status_code == 404
    assert LesionImage.objects.get(pk=image.pk).clinician_note == ""


def test_the_note_form_requires_a_csrf_token(client, owner):
    image = make_image(owner)
    client = type(client)(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(note_url(image), {"clinician_note": "x"}).status_code == 403


def test_a_note_never_redirects_off_site(owner_web, owner):
    image = make_image(owner)
    response = owner_web.post(note_url(image), {"clinician_note": "x", "next": "https://evil.example/"})
    assert response["Location"] == "/history/"


def test_the_note_and_the_admins_diagnosis_note_stay_apart(owner_web, owner, admin_user):
    image = make_image(owner)
    image.set_label("mel", "histo", "Confirmed by histopathology.", by=admin_user)

    owner_web.post(note_url(image), {"clinician_note": "Referred to dermatology."})
    image.refresh_from_db()
    assert (image.clinician_note, image.diagnosis_note) == ("Referred to dermatology.", "Confirmed by histopathology.")
    image.set_label("bcc", "histo", "Revised.", by=admin_user)
    image.refresh_from_db()
    assert image.clinician_note == "Referred to dermatology."


def test_the_history_row_links_to_the_note_form_and_back(owner_web, owner):
    image = make_image(owner, original_filename="mole.png")
    page = owner_web.get("/history/?q=mole").content.decode()
    assert f'href="/images/{image.pk}/note/?next=/history/%3Fq%3Dmole"' in page
    assert 'aria-label="Add note on mole.png"' in page
