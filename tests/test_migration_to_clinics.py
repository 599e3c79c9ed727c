"""Migrations 0010-0012 on a database made before clinics: nothing is lost, and each user is served
the same pages as before (their history, result pages, batch, API list), and nothing of anyone else's."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from classifier.models import AuditEvent, LesionImage, Membership, Prediction, UploadBatch
from tests.conftest import token_client
from tests.images import image_bytes
from tests.signing_in import verified_login

BEFORE = [("classifier", "0009_latest_prediction_link")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes("classifier")


def old_upload(apps, owner, seed: int, **fields):
    """An image with a finished reading, as the code of migration 0009 stored it."""
    LesionImage, Prediction = apps.get_model("classifier", "LesionImage"), apps.get_model("classifier", "Prediction")
    sha = f"{seed:064x}"
    name = default_storage.save(f"images/{sha[:2]}/{sha}.png", ContentFile(image_bytes(seed=seed)))
    uploaded = timezone.now() - datetime.timedelta(days=seed)
    image = LesionImage.objects.create(owner=owner, sha256=sha, file=name, source_format="PNG", width=64,
                                       height=48, created_at=uploaded, **fields)  # fmt: skip
    version = apps.get_model("classifier", "ModelVersion").objects.get(name="v-old")
    probabilities = {code: 0.01 for code in ("akiec", "bcc", "bkl", "df", "nv", "vasc")} | {"mel": 0.94}
    prediction = Prediction.objects.create(
        image=image, model_version=version, status="done", probabilities=probabilities, top_class="mel",
        top_probability=0.94, malignant_probability=0.96, is_malignant=True, is_out_of_distribution=False,
    )  # fmt: skip
    LesionImage.objects.filter(pk=image.pk).update(latest_prediction=prediction)
    return image, prediction


@pytest.mark.django_db(transaction=True)
def test_a_migrated_database_serves_each_user_the_same_pages(client):
    try:
        apps = migrate(BEFORE)
        User = apps.get_model("auth", "User")
        alice, bob = User.objects.create(username="alice"), User.objects.create(username="bob")
        apps.get_model("classifier", "ModelVersion").objects.create(
            name="v-old", directory="v-old", card={}, malignant_threshold=0.5
        )
        mole, mole_reading = old_upload(apps, alice, 1, original_filename="alice-mole.png", lesion_id="HAM_1")
        batch = apps.get_model("classifier", "UploadBatch").objects.create(owner=alice)
        batched = [old_upload(apps, alice, seed, original_filename=f"alice-{seed}.png", batch=batch)
                   for seed in (2, 3)]  # fmt: skip
        for position, (image, prediction) in enumerate(batched):
            apps.get_model("classifier", "BatchEntry").objects.create(
                batch=batch, image=image, prediction=prediction, position=position
            )
        bobs, bobs_reading = old_upload(apps, bob, 4, original_filename="bob-mole.png")
        # The same bytes uploaded by both: one image each before, one per clinic after.
        twin_sha = mole.sha256
        old_upload(apps, bob, 5, original_filename="bob-twin.png")
        apps.get_model("classifier", "LesionImage").objects.filter(original_filename="bob-twin.png").update(
            sha256=twin_sha
        )
    finally:
        migrate(latest())

    User = get_user_model()
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")

    # Nothing was lost, and everything has a place.
    assert LesionImage.objects.count() == 5 and Prediction.objects.count() == 5
    for user, count in ((alice, 3), (bob, 2)):
        (membership,) = Membership.objects.filter(user=user)
        assert membership.role == "manager" and membership.is_current
        assert membership.clinic.name == f"{user.username} (personal)"
        assert set(LesionImage.objects.filter(owner=user).values_list("clinic", flat=True)) == {membership.clinic_id}
        assert LesionImage.objects.filter(clinic=membership.clinic).count() == count
    assert UploadBatch.objects.get(pk=batch.pk).clinic.name == "alice (personal)"
    migrated = LesionImage.objects.get(pk=mole.pk)
    assert migrated.source_lesion_id == "HAM_1" and migrated.lesion is None
    assert migrated.taken_at == migrated.created_at
    assert migrated.latest_prediction_id == mole_reading.pk

    # Each user is served their pages as before (as the manager of their clinic, with a second factor)...
    verified_login(client, alice)
    history = client.get("/history/").content.decode()
    assert all(name in history for name in ("alice-mole.png", "alice-2.png", "alice-3.png"))
    assert "bob-mole.png" not in history and "bob-twin.png" not in history
    page = client.get(f"/predictions/{mole_reading.pk}/")
    assert page.status_code == 200 and "Melanoma" in page.content.decode()
    assert client.get(f"/batches/{batch.pk}/").status_code == 200
    assert client.get(f"/images/{mole.pk}/file/").status_code == 200
    api = token_client(alice).get("/api/v1/images/").json()
    assert sorted(item["original_filename"] for item in api["results"]) == ["alice-2.png", "alice-3.png",
                                                                            "alice-mole.png"]  # fmt: skip
    # ...and nothing of the other's.
    assert client.get(f"/predictions/{bobs_reading.pk}/").status_code == 404
    verified_login(client, bob)
    assert client.get(f"/predictions/{bobs_reading.pk}/").status_code == 200
    assert client.get(f"/predictions/{mole_reading.pk}/").status_code == 404
    assert client.get(f"/batches/{batch.pk}/").status_code == 404
    assert token_client(bob).get("/api/v1/images/").json()["count"] == 2
    assert AuditEvent.objects.filter(username="alice").exists()  # the pages above were audited
