"""Admins label images (API, admin, in bulk), see a labelling queue, and import labelled datasets."""

from __future__ import annotations

import datetime
import re

import pandas as pd
import pytest
from django.core.management import call_command
from django.utils import timezone

from classifier.models import LesionImage
from tests.conftest import token_client
from tests.factories import make_image, make_prediction
from tests.images import image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(admin_user):
    return token_client(admin_user)


def test_an_admin_labels_an_image_through_the_api(admin_api, admin_user, owner):
    image = make_image(owner)

    response = admin_api.post(
        f"/api/v1/images/{image.pk}/label/",
        {"diagnosis": "mel", "method": "histo", "note": "excised 2026-11-20"},
        format="json",
    )

    assert response.status_code == 200, response.content
    image.refresh_from_db()
    assert (image.diagnosis, image.diagnosis_method, image.diagnosis_note) == ("mel", "histo", "excised 2026-11-20")
    assert image.labelled_by == admin_user and image.labelled_at is not None
    assert response.json()["labelled_by"] == admin_user.username


@pytest.mark.parametrize("body", [{"diagnosis": "cat", "method": "histo"}, {"diagnosis": "mel"}, {}])
def test_a_label_outside_the_seven_classes_or_without_a_method_is_refused(admin_api, owner, body):
    image = make_image(owner)
    response = admin_api.post(f"/api/v1/images/{image.pk}/label/", body, format="json")
    assert response.status_code == 400
    image.refresh_from_db()
    assert image.diagnosis == ""


def test_a_clinician_cannot_label_even_their_own_image(owner_api, outsider_api, owner):
    image = make_image(owner)
    body = {"diagnosis": "nv", "method": "histo"}
    assert owner_api.post(f"/api/v1/images/{image.pk}/label/", body, format="json").status_code == 403
    assert outsider_api.post(f"/api/v1/images/{image.pk}/label/", body, format="json").status_code in (403, 404)
    image.refresh_from_db()
    assert image.diagnosis == ""


def test_bulk_labelling_sets_the_same_diagnosis_on_every_selected_image(owner, admin_user):
    images = [make_image(owner) for _ in range(3)]
    untouched = make_image(owner)

    count = LesionImage.objects.filter(pk__in=[i.pk for i in images]).label("bkl", "consensus", "", admin_user)

    assert count == 3
    assert set(LesionImage.objects.filter(diagnosis="bkl").values_list("pk", flat=True)) == {i.pk for i in images}
    untouched.refresh_from_db()
    assert untouched.diagnosis == ""


def test_the_bulk_label_admin_action_asks_then_labels(admin_client, owner):
    images = [make_image(owner) for _ in range(2)]
    selected = [str(i.pk) for i in images]
    url = "/admin/classifier/lesionimage/"

    confirm = admin_client.post(url, {"action": "label_selected", "_selected_action": selected})
    assert confirm.status_code == 200 and b"Label 2 images" in confirm.content

    done = admin_client.post(
        url,
        {"action": "label_selected", "_selected_action": selected, "apply": "1", "diagnosis": "df", "method": "histo"},
    )
    assert done.status_code == 302
    assert LesionImage.objects.filter(diagnosis="df").count() == 2


def test_the_bulk_label_form_preselects_no_diagnosis_or_method_and_names_its_count(admin_client, owner):
    selected = [str(make_image(owner).pk) for _ in range(3)]

    page = admin_client.post(
        "/admin/classifier/lesionimage/", {"action": "label_selected", "_selected_action": selected}
    ).content.decode()

    for name in ("diagnosis", "method"):
        select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', page, re.S)
        assert select and "required" in select.group(0), name
        options = re.findall(r"<option[^>]*>", select.group(1))
        assert options[0] == '<option value="" selected>', (name, options[0])
        assert sum("selected" in option for option in options) == 1, name
    assert re.search(r'<input type="submit" value="Label 3 images"', page)
    assert page.count("<h1>") == 1


def test_the_bulk_label_form_labels_nothing_without_a_diagnosis(admin_client, owner):
    selected = [str(make_image(owner).pk) for _ in range(2)]

    response = admin_client.post(
        "/admin/classifier/lesionimage/",
        {"action": "label_selected", "_selected_action": selected, "apply": "1", "diagnosis": "", "method": "histo"},
    )

    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert LesionImage.objects.exclude(diagnosis="").count() == 0


def test_the_admin_image_list_shows_thumbnails_predictions_and_label_status(admin_client, owner):
    make_prediction(owner, status="done", top_class="mel")
    page = admin_client.get("/admin/classifier/lesionimage/").content.decode()
    assert "/thumbnail/" in page and "Melanoma (70%)" in page and "unlabelled" in page


def test_the_labelling_queue_lists_unlabelled_images_least_certain_first(owner, admin_user, admin_client):
    sure = make_prediction(owner, status="done", top_probability=0.95).image
    unsure = make_prediction(owner, status="done", top_probability=0.40).image
    middling = make_prediction(owner, status="done", top_probability=0.70).image
    not_yet = make_prediction(owner, status="queued").image
    labelled = make_prediction(owner, status="done", top_probability=0.30).image
    labelled.set_label("nv", "histo", "", admin_user)

    assert list(LesionImage.objects.labelling_queue()) == [unsure, middling, sure, not_yet]


def rows_of(page: str) -> list[int]:
    """The image ids of a changelist's rows, top to bottom."""
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', page)]


def test_the_labelling_queue_page_shows_the_least_certain_image_on_top(owner, admin_user, admin_client):
    # Made oldest first, so "newest first" would list them in the opposite order.
    not_yet = make_prediction(owner, status="queued").image
    sure = make_prediction(owner, status="done", top_class="vasc", top_probability=0.96).image
    unsure = make_prediction(owner, status="done", top_probability=0.31).image
    middling = make_prediction(owner, status="done", top_probability=0.70).image
    # The latest finished reading counts: this one was sure once, is unsure now.
    hour_ago = timezone.now() - datetime.timedelta(hours=1)
    now_unsure = make_prediction(owner, status="done", top_probability=0.99, finished_at=hour_ago).image
    make_prediction(owner, status="done", top_probability=0.45, image=now_unsure, finished_at=timezone.now())

    response = admin_client.get("/admin/classifier/unlabelledimage/")

    assert response.status_code == 200
    assert rows_of(response.content.decode()) == [unsure.pk, now_unsure.pk, middling.pk, sure.pk, not_yet.pk]


def test_importing_a_labelled_dataset_is_idempotent(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, (dx, lesion) in enumerate([("mel", "L1"), ("mel", "L1"), ("nv", "L2"), ("bcc", "L3")]):
        (images / f"IMG_{i}.jpg").write_bytes(image_bytes("JPEG", (60, 45), seed=500 + i))
        rows.append({"lesion_id": lesion, "image_id": f"IMG_{i}", "dx": dx, "dx_type": "histo",
                     "age": 50.0 if i else None, "sex": "female", "localization": "back"})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "metadata.csv", index=False)

    call_command("import_labelled_images", str(tmp_path))
    call_command("import_labelled_images", str(tmp_path))

    output = capsys.readouterr().out
    assert "Imported 4 images" in output and "Imported 0 images; 4 were already present" in output
    imported = LesionImage.objects.order_by("original_filename")
    assert [i.diagnosis for i in imported] == ["mel", "mel", "nv", "bcc"]
    assert [i.source_lesion_id for i in imported] == ["L1", "L1", "L2", "L3"]
    assert imported[0].owner.username == "dataset-import" and imported[0].age is None
    assert {i.diagnosis_method for i in imported} == {"histo"}


def test_importing_a_csv_with_an_unknown_diagnosis_is_refused(tmp_path):
    from django.core.management.base import CommandError

    (tmp_path / "images").mkdir()
    pd.DataFrame([{"image_id": "a", "dx": "cat"}]).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(CommandError, match="outside the seven classes"):
        call_command("import_labelled_images", str(tmp_path))
    assert LesionImage.objects.count() == 0


def test_importing_with_as_patients_groups_a_datasets_lesions_into_patients_and_lesions(tmp_path, capsys):
    from classifier.models import Clinic, Lesion, Patient

    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, (dx, lesion, site) in enumerate([("mel", "HAM_1", "back"), ("mel", "HAM_1", "back"),
                                            ("nv", "HAM_2", "lower extremity"), ("bcc", None, "face")]):  # fmt: skip
        (images / f"IMG_{i}.jpg").write_bytes(image_bytes("JPEG", (60, 45), seed=600 + i))
        rows.append({"lesion_id": lesion, "image_id": f"IMG_{i}", "dx": dx, "dx_type": "histo", "age": 50.0,
                     "sex": "male", "localization": site})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "metadata.csv", index=False)

    call_command("import_labelled_images", str(tmp_path), "--clinic", "HAM10000", "--as-patients")
    call_command("import_labelled_images", str(tmp_path), "--clinic", "HAM10000", "--as-patients")

    output = capsys.readouterr().out
    assert "Imported 4 images; 2 new patients;" in output and "Imported 0 images; 0 new patients; 4 were" in output
    clinic = Clinic.objects.get(name="HAM10000")
    assert sorted(Patient.objects.filter(clinic=clinic).values_list("reference", "sex")) == [
        ("HAM_1", "male"),
        ("HAM_2", "male"),
    ]
    first = Lesion.objects.get(patient__reference="HAM_1")
    assert (first.site, first.diagnosis, first.diagnosis_method) == ("back", "mel", "histo")
    assert sorted(first.images.values_list("original_filename", flat=True)) == ["IMG_0.jpg", "IMG_1.jpg"]
    assert Lesion.objects.get(patient__reference="HAM_2").site == "lower extremity"
    alone = LesionImage.objects.get(original_filename="IMG_3.jpg")
    assert (alone.lesion, alone.clinic, alone.diagnosis) == (None, clinic, "bcc")  # no lesion id: a one-off
    assert set(LesionImage.objects.values_list("clinic", flat=True)) == {clinic.pk}
