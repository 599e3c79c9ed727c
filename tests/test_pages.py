"""The clinician's pages, through Django's test client (tests/browser/ drives them in Chromium)."""

from __future__ import annotations

import datetime
import re
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from classifier.models import LesionImage, Prediction
from tests.conftest import media_files
from tests.factories import make_batch, make_image, make_lesion, make_patient, make_prediction
from tests.images import upload
from tests.signing_in import verified_login

pytestmark = pytest.mark.django_db


def test_login_page_logs_a_clinician_in(client, owner):
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302
    assert client.get("/upload/").status_code == 200


def test_uploading_one_image_leads_to_its_result_page(owner_web):
    response = owner_web.post("/upload/", {"files": [upload("mole.png")], "age": "61", "site": "back"})

    prediction = Prediction.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/predictions/{prediction.pk}/"
    assert (prediction.image.age, prediction.image.site) == (61, "back")


def test_uploading_several_images_leads_to_the_batch_page(owner_web):
    response = owner_web.post("/upload/", {"files": [upload("a.png", seed=1), upload("b.png", seed=2)]})

    image = LesionImage.objects.first()
    assert response["Location"] == f"/batches/{image.batch_id}/"
    page = owner_web.get(response["Location"]).content.decode()
    assert "a.png" in page and "b.png" in page and "<progress" in page


def test_a_bad_file_shows_a_form_error_and_stores_nothing(owner_web):
    response = owner_web.post("/upload/", {"files": [upload("notes.jpg", data=b"plain text, not an image")]})

    assert response.status_code == 400
    assert "notes.jpg" in response.content.decode()
    assert LesionImage.objects.count() == 0 and media_files() == []


def test_the_upload_form_requires_a_csrf_token(client, owner):
    client = type(client)(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/upload/", {"files": [upload()]}).status_code == 403


def test_the_result_page_shows_the_notice_the_classes_and_live_status_hooks(owner_web, owner):
    prediction = make_prediction(owner, status="done", top_class="mel", is_malignant=True)

    page = owner_web.get(f"/predictions/{prediction.pk}/").content.decode()

    assert "Research tool, not a diagnosis" in page
    assert "Melanoma" in page and "Suspicious for malignancy" in page
    for name in ("Basal cell carcinoma", "Melanocytic nevus", "Vascular lesion", "Dermatofibroma"):
        assert name in page
    assert f'data-status-url="/api/v1/predictions/{prediction.pk}/"' in page
    assert "prediction.js" in page
    # A reading done before the page opened is drawn at once, not "–" until the first poll.
    assert '<tr data-class="mel" class="top">' in page and '<span class="pct">70.0 %</span>' in page
    queued = owner_web.get(f"/predictions/{make_prediction(owner).pk}/").content.decode()
    assert '<span class="pct">–</span>' in queued and '<tr data-class="mel" class="top">' not in queued


def test_the_result_page_gives_the_located_lesions_relative_size_only_when_there_is_one(owner_web, owner):
    outline = {"grid": [[0.9]], "area": 0.234, "box": [0.2, 0.2, 0.7, 0.8]}
    located = make_prediction(owner, status="done", top_class="nv", lesion_outline=outline)
    plain = make_prediction(owner, status="done", top_class="nv")

    page = owner_web.get(f"/predictions/{located.pk}/").content.decode()
    other = owner_web.get(f"/predictions/{plain.pk}/").content.decode()

    located_line = page[page.index('data-show-if="lesion_outlined"') :].split("</p>")[0]
    assert "hidden" not in located_line.split(">")[0] and '"lesion_area">23</span> %' in located_line
    assert "not a measurement (no ruler calibration)" in located_line
    assert 'data-show-if="lesion_outlined" hidden' in other


def test_a_queued_result_page_says_it_updates_by_itself(owner_web, owner):
    prediction = make_prediction(owner, status="queued")
    page = owner_web.get(f"/predictions/{prediction.pk}/").content.decode()
    assert "updates by itself" in page


def test_history_lists_only_the_clinicians_own_uploads_newest_first(owner_web, owner, outsider):
    older = make_prediction(owner, status="done", top_class="nv")
    newer = make_prediction(owner, status="done", top_class="mel")
    make_prediction(outsider, image=make_image(outsider, original_filename="bobs-image.png"))

    page = owner_web.get("/history/").content.decode()

    assert page.index(f"/predictions/{newer.pk}/") < page.index(f"/predictions/{older.pk}/")
    assert "bobs-image.png" not in page


def test_history_filters_by_predicted_class_status_and_date(owner_web, owner):
    mel = make_prediction(owner, status="done", top_class="mel")
    nv = make_prediction(owner, status="done", top_class="nv")
    queued = make_prediction(owner, status="queued")
    old_image = make_image(owner, created_at=timezone.now() - datetime.timedelta(days=30))
    old = make_prediction(owner, status="done", top_class="bkl", image=old_image)

    def shown(query):
        page = owner_web.get(f"/history/?{query}").content.decode()
        return {p.pk for p in (mel, nv, queued, old) if f"/predictions/{p.pk}/" in page}

    assert shown("top_class=mel") == {mel.pk}
    assert shown("status=queued") == {queued.pk}
    since = (timezone.now() - datetime.timedelta(days=1)).date().isoformat()
    assert shown(f"date_from={since}") == {mel.pk, nv.pk, queued.pk}
    assert shown(f"date_to={since}") == {old.pk}


def test_history_is_paginated(owner_web, owner):
    for _ in range(25):
        make_prediction(owner)
    first = owner_web.get("/history/").content.decode()
    second = owner_web.get("/history/?page=2").content.decode()
    assert "Page 1 of 2" in first and "Page 2 of 2" in second


def test_the_image_file_is_served_as_png_to_its_owner(owner_web, owner):
    image = make_image(owner)
    response = owner_web.get(f"/images/{image.pk}/file/")
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


# --- Upload page: the drop zone enhances a plain, working file input.


def test_the_upload_page_has_a_drop_zone_around_a_plain_labelled_file_input(owner_web):
    page = owner_web.get("/upload/").content.decode()

    assert '<label for="id_files">Dermatoscopic images</label>' in page
    assert re.search(r'<div class="dropzone" id="dropzone"[^>]*>\s*<input type="file" name="files"[^>]*multiple', page)
    assert 'id="id_files_helptext"' in page  # what the input's aria-describedby points at
    assert 'enctype="multipart/form-data"' in page and "upload.js" in page


# --- Batch page: results as they arrive, the ones needing attention first.


def test_the_batch_page_lists_the_ones_needing_attention_first(owner_web, owner):
    batch = make_batch(owner)

    def reading(**fields):
        status = fields.pop("status", "done")
        return make_prediction(owner, status=status, image=make_image(owner, batch=batch), **fields)

    benign = reading(top_class="nv", is_malignant=False, malignant_probability=0.1)
    flagged_lower = reading(top_class="mel", is_malignant=True, malignant_probability=0.7)
    flagged_higher = reading(top_class="bcc", is_malignant=True, malignant_probability=0.95)
    failed = reading(status="failed", error="Could not read the stored image.")
    queued = reading(status="queued")
    uncertain = reading(top_class="bkl", is_malignant=False, malignant_probability=0.3, is_uncertain=True)
    unusual = reading(top_class="nv", is_malignant=False, malignant_probability=0.05, is_out_of_distribution=True)

    response = owner_web.get(f"/batches/{batch.pk}/")
    page = response.content.decode()

    rows = [int(pk) for pk in re.findall(r'<tr data-prediction="(\d+)"', page)]
    expected = [flagged_higher, flagged_lower, uncertain, unusual, failed, benign, queued]
    assert rows == [p.pk for p in expected]
    assert "Could not read the stored image." in page
    assert "Not like a dermatoscopic image" in page and "Uncertain" in page
    assert page.count("⚠ Suspicious") == 2


def test_the_batch_page_has_thumbnails_a_progress_bar_and_its_own_script(owner_web, owner):
    batch = make_batch(owner)
    done = make_prediction(owner, status="done", image=make_image(owner, batch=batch, original_filename="a.png"))
    make_prediction(owner, status="queued", image=make_image(owner, batch=batch, original_filename="b.png"))

    page = owner_web.get(f"/batches/{batch.pk}/").content.decode()

    assert f'src="/images/{done.image_id}/thumbnail/"' in page
    assert re.search(r'<progress id="batch-progress" max="2" value="1"', page)
    assert re.search(r'<p id="batch-count" role="status" aria-live="polite">1 of 2 classified.</p>', page)
    assert f'data-status-url="/api/v1/predictions/?batch={batch.pk}&amp;page_size=500"' in page
    assert "batch.js" in page and "prediction.js" not in page


def test_another_clinicians_batch_is_not_found(client, outsider, owner):
    batch = make_batch(owner)
    make_prediction(owner, image=make_image(owner, batch=batch))
    client.force_login(outsider)
    assert client.get(f"/batches/{batch.pk}/").status_code == 404


# --- Accessibility: labels, landmarks, references, colour contrast.


class _Markup(HTMLParser):
    """Collects what the accessibility checks below need from a page."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self.controls: list[dict[str, str]] = []
        self.references: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "label" and "for" in attrs:
            self.label_for.add(attrs["for"])
        if tag in ("select", "textarea") or (
            tag == "input" and attrs.get("type") not in ("hidden", "submit", "button", "reset")
        ):
            self.controls.append(attrs)
        for name in ("aria-describedby", "aria-labelledby"):
            self.references.extend(attrs.get(name, "").split())


def markup(html: str) -> _Markup:
    parser = _Markup()
    parser.feed(html)
    return parser


def accessibility_problems(html: str) -> list[str]:
    page = markup(html)
    problems = []
    for control in page.controls:
        labelled = control.get("id") in page.label_for or control.get("aria-label") or control.get("aria-labelledby")
        if not labelled:
            problems.append(f"unlabelled control {control}")
    problems += [f"aria reference to a missing id {ref!r}" for ref in page.references if ref not in page.ids]
    tags = [tag for tag, _ in page.tags]
    html_attrs = next(attrs for tag, attrs in page.tags if tag == "html")
    if html_attrs.get("lang") != "en":
        problems.append("no lang on <html>")
    if tags.count("main") != 1:
        problems.append("not exactly one <main>")
    skip = [attrs for tag, attrs in page.tags if tag == "a" and "skip" in attrs.get("class", "")]
    if not skip or skip[0]["href"].lstrip("#") not in page.ids:
        problems.append("no working skip link")
    return problems


def test_every_page_a_clinician_uses_labels_its_controls_and_has_landmarks(client, owner):
    batch = make_batch(owner)
    make_prediction(owner, status="done", image=make_image(owner, batch=batch))
    image = make_image(owner, batch=batch, clinician_note="note")
    make_prediction(owner, status="failed", image=image, error="broken")

    assert accessibility_problems(client.get("/login/").content.decode()) == []
    client.force_login(owner)
    pages = [
        "/upload/",
        "/history/",
        "/history/?q=x&date_from=bad",
        f"/batches/{batch.pk}/",
        f"/images/{image.pk}/note/",
    ]
    for url in pages:
        html = client.get(url).content.decode()
        assert accessibility_problems(html) == [], url
        assert '<nav aria-label="Main">' in html, url
    rejected = client.post("/upload/", {"files": [upload("notes.jpg", data=b"not an image")]}).content.decode()
    assert accessibility_problems(rejected) == []


def test_the_clinic_pages_and_the_clinic_switcher_label_their_controls(client, manager, other_clinic, clinic):
    other_clinic.add_member(manager, "clinician")  # two clinics: the header's switcher shows
    prediction = make_prediction(manager, status="done", image=make_image(manager, clinic=clinic))
    verified_login(client, manager)

    for url in [
        "/clinic/members/",
        "/clinic/audit/",
        "/clinic/audit/?patient=nobody",
        f"/predictions/{prediction.pk}/",
    ]:
        html = client.get(url).content.decode()
        assert accessibility_problems(html) == [], url
        assert 'id="clinic-switch"' in html, url


def test_the_patient_and_lesion_pages_label_their_controls_and_have_landmarks(client, manager, clinic):
    patient = make_patient(clinic, "MRN-1")
    lesion = make_lesion(patient, site="back", side="left", label="L1", map_view="back", map_x=0.4, map_y=0.3)
    make_lesion(patient, site="unknown", label="L2")  # not on the map: the list under it
    for days, score in ((60, 0.2), (0, 0.7)):
        picture = make_image(manager, lesion=lesion, taken_at=timezone.now() - datetime.timedelta(days=days))
        make_prediction(manager, status="done", image=picture, malignant_probability=score, is_malignant=score > 0.5)
    # A labeller, so the lesion page has its diagnosis form too.
    manager.user_permissions.add(Permission.objects.get(codename="change_lesionimage"))
    verified_login(client, manager)

    responses = [client.get(url) for url in (
        "/patients/", "/patients/?q=nobody", f"/patients/{patient.pk}/", f"/lesions/{lesion.pk}/",
        f"/lesions/{lesion.pk}/?a=1&b=2", f"/patients/{patient.pk}/export/", f"/patients/{patient.pk}/erase/",
    )]  # fmt: skip
    responses += [
        client.post("/patients/", {"reference": ""}),
        client.post(f"/patients/{patient.pk}/", {"reference": "", "skin_type": "VII"}),
        client.post(f"/patients/{patient.pk}/lesions/", {"site": "hand", "side": "midline"}),
        client.post(f"/lesions/{lesion.pk}/", {"site": ""}),
        client.post(f"/lesions/{lesion.pk}/label/", {"diagnosis": "xx"}),
        client.post(f"/patients/{patient.pk}/erase/", {"confirm_reference": "no"}),
    ]
    for response in responses:
        html = response.content.decode()
        where = response.request["PATH_INFO"]
        assert accessibility_problems(html) == [], where
        assert '<nav aria-label="Main">' in html, where
        ids = re.findall(r'\sid="([^"]+)"', html)
        assert sorted({i for i in ids if ids.count(i) > 1}) == [], where


def test_the_accessibility_check_catches_an_unlabelled_control():
    html = '<html lang="en"><a class="skip" href="#main"></a><main id="main"><input name="q" id="q"></main></html>'
    assert accessibility_problems(html) == ["unlabelled control {'name': 'q', 'id': 'q'}"]


def test_the_current_page_is_marked_in_the_navigation(owner_web):
    page = owner_web.get("/history/").content.decode()
    assert 'href="/history/" aria-current="page"' in page
    assert 'href="/upload/" aria-current' not in page


def contrast(foreground: str, background: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_stylesheets_colours_meet_wcag_contrast():
    css = (settings.BASE_DIR / "static" / "lesionsite.css").read_text()
    root = re.search(r":root\s*{(.*?)}", css, re.S).group(1)
    colour = {name: value for name, value in re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", root)}
    colour["white"] = "#ffffff"
    text_on = [  # (text, background) pairs the stylesheet uses
        ("ink", "bg"), ("ink", "surface"), ("ink", "notice-bg"), ("ink", "pill-bg"), ("ink", "done-bg"),
        ("muted", "bg"), ("muted", "surface"), ("muted", "pill-bg"), ("muted", "drop-bg"),
        ("accent", "bg"), ("accent", "surface"), ("accent", "drop-bg"), ("white", "accent"),
        ("warn", "surface"), ("warn", "failed-bg"), ("ok", "done-bg"),
    ]  # fmt: skip
    for text, background in text_on:
        assert contrast(colour[text], colour[background]) >= 4.5, (text, background)
    for background in ("bg", "surface", "notice-bg"):  # the focus ring, a non-text indicator
        assert contrast(colour["focus"], colour[background]) >= 3.0, ("focus", background)


def test_the_contrast_formula_matches_wcags_reference_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
