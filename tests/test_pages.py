"""The clinician's pages, through Django's test client (tests/browser/ drives them in Chromium)."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from classifier.models import LesionImage, Prediction, UploadBatch
from tests.conftest import media_files
from tests.factories import make_image, make_prediction
from tests.images import upload

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


def test_a_queued_result_page_says_it_updates_by_itself(owner_web, owner):
    prediction = make_prediction(owner, status="queued")
    page = owner_web.get(f"/predictions/{prediction.pk}/").content.decode()
    assert "updates by itself" in page


def test_history_lists_only_the_clinicians_own_uploads_newest_first(owner_web, owner, colleague):
    older = make_prediction(owner, status="done", top_class="nv")
    newer = make_prediction(owner, status="done", top_class="mel")
    make_prediction(colleague, image=make_image(colleague, original_filename="bobs-image.png"))

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
    batch = UploadBatch.objects.create(owner=owner)

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
    assert "Unusual image" in page and "Uncertain" in page
    assert page.count("⚠ Suspicious") == 2


def test_the_batch_page_has_thumbnails_a_progress_bar_and_its_own_script(owner_web, owner):
    batch = UploadBatch.objects.create(owner=owner)
    done = make_prediction(owner, status="done", image=make_image(owner, batch=batch, original_filename="a.png"))
    make_prediction(owner, status="queued", image=make_image(owner, batch=batch, original_filename="b.png"))

    page = owner_web.get(f"/batches/{batch.pk}/").content.decode()

    assert f'src="/images/{done.image_id}/file/"' in page
    assert re.search(r'<progress id="batch-progress" max="2" value="1"', page)
    assert re.search(r'<p id="batch-count" role="status" aria-live="polite">1 of 2 classified.</p>', page)
    assert f'data-status-url="/api/v1/predictions/?batch={batch.pk}&amp;page_size=500"' in page
    assert "batch.js" in page and "prediction.js" not in page


def test_another_clinicians_batch_is_not_found(client, colleague, owner):
    batch = UploadBatch.objects.create(owner=owner)
    make_prediction(owner, image=make_image(owner, batch=batch))
    client.force_login(colleague)
    assert client.get(f"/batches/{batch.pk}/").status_code == 404
