"""GET /api/v1/batches/ and /api/v1/batches/{id}/: a multi-file upload's progress and its predictions."""

from __future__ import annotations

import pytest

from classifier.models import Prediction
from tests.factories import make_batch, make_image, make_lesion, make_patient, make_prediction
from tests.images import upload

pytestmark = pytest.mark.django_db


def batch_of(owner, clinic, readings):
    """A batch whose files have these (status, malignancy score, is_malignant) predictions, in this order."""
    batch = make_batch(owner, clinic)
    for status, score, flagged in readings:
        image = make_image(owner, clinic, batch=batch)
        if status == "done":
            make_prediction(owner, "done", "mel" if flagged else "nv", image=image, malignant_probability=score,
                            is_malignant=flagged, malignant_threshold=0.5)  # fmt: skip
        else:
            make_prediction(owner, status, image=image)
    return batch


def test_a_multi_file_upload_answers_with_its_batch_and_the_batch_says_nothing_is_finished(owner_api):
    files = [upload(f"m{i}.png", seed=10 + i) for i in range(3)]

    body = owner_api.post("/api/v1/images/", {"file": files}, format="multipart").json()
    batch = owner_api.get(body["batch_url"]).json()

    assert body["batch_url"].endswith(f"/api/v1/batches/{body['batch']}/")
    assert batch["counts"] == {"queued": 3, "running": 0, "done": 0, "failed": 0}
    assert (batch["file_count"], batch["finished"], batch["progress"], batch["is_finished"]) == (3, 0, 0.0, False)
    assert sorted(p["original_filename"] for p in batch["predictions"]) == ["m0.png", "m1.png", "m2.png"]
    assert batch["uploaded_by"] == "alice"
    assert batch["page"].endswith(f"/batches/{body['batch']}/")


def test_a_single_file_upload_has_no_batch(owner_api):
    body = owner_api.post("/api/v1/images/", {"file": [upload()]}, format="multipart").json()

    assert (body["batch"], body["batch_url"]) == (None, None)


def test_the_batch_lists_the_flagged_prediction_first_then_by_score_and_pending_last(owner_api, owner, clinic):
    batch = batch_of(owner, clinic, [("done", 0.10, False), ("queued", None, False), ("done", 0.62, True),
                                     ("failed", None, False), ("done", 0.31, False)])  # fmt: skip

    body = owner_api.get(f"/api/v1/batches/{batch.pk}/").json()

    order = [(p["status"], p["malignant_probability"], p["position"]) for p in body["predictions"]]
    assert order == [("done", 0.62, 2), ("failed", None, 3), ("done", 0.31, 4), ("done", 0.10, 0), ("queued", None, 1)]
    assert body["predictions"][0]["is_malignant"] is True
    assert body["counts"] == {"queued": 1, "running": 0, "done": 3, "failed": 1}
    assert (body["finished"], body["progress"], body["is_finished"]) == (4, 0.8, False)


def test_the_list_gives_each_batchs_counts_in_a_fixed_number_of_queries(
    owner_api, owner, clinic, django_assert_max_num_queries
):
    for readings in ([("done", 0.2, False)] * 2, [("queued", None, False), ("running", None, False)]):
        batch_of(owner, clinic, readings)
    batch_of(owner, clinic, [("done", 0.2, False)] * 4)

    with django_assert_max_num_queries(12):
        body = owner_api.get("/api/v1/batches/").json()

    assert [(b["file_count"], b["finished"], b["is_finished"]) for b in body["results"]] == [
        (4, 4, True),
        (2, 0, False),
        (2, 2, True),
    ]
    assert "predictions" not in body["results"][0]


def test_an_image_attached_to_another_clinics_lesion_leaves_the_batch(owner_api, owner, clinic, other_clinic):
    batch = batch_of(owner, clinic, [("done", 0.2, False), ("done", 0.3, False)])
    moved = batch.entries.first().image
    moved.clinic = other_clinic
    moved.lesion = make_lesion(make_patient(other_clinic))
    moved.save()

    detail = owner_api.get(f"/api/v1/batches/{batch.pk}/").json()
    listed = owner_api.get("/api/v1/batches/").json()["results"][0]

    assert detail["file_count"] == listed["file_count"] == 1
    assert [p["image_id"] for p in detail["predictions"]] != [moved.pk]


def test_someone_outside_the_clinic_gets_404_and_an_empty_list(outsider_api, owner, clinic):
    batch = batch_of(owner, clinic, [("done", 0.2, False)])

    assert outsider_api.get(f"/api/v1/batches/{batch.pk}/").status_code == 404
    assert outsider_api.get("/api/v1/batches/").json()["results"] == []


def test_reading_a_batch_is_audited(owner_api, owner, clinic):
    from classifier.audit import Action, AuditEvent

    batch = batch_of(owner, clinic, [("done", 0.2, False)])

    owner_api.get(f"/api/v1/batches/{batch.pk}/")

    event = AuditEvent.objects.get(action=Action.VIEWED_BATCH)
    assert (event.object_type, event.object_id, event.clinic_id) == ("batch", batch.pk, clinic.pk)
    assert Prediction.objects.count() == 1


@pytest.mark.parametrize("files", [2, 12])
def test_one_batch_reads_in_the_same_number_of_queries_however_many_files(
    owner_api, owner, clinic, files, django_assert_max_num_queries
):
    batch = batch_of(owner, clinic, [("done", 0.2, False)] * files)

    with django_assert_max_num_queries(10):
        body = owner_api.get(f"/api/v1/batches/{batch.pk}/").json()

    assert len(body["predictions"]) == files
