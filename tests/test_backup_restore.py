"""A backup restored into an empty installation holds the same rows, files and pages; a bad one restores nothing."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core import serializers
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from classifier.backup_archive import backed_up_models
from classifier.models import AuditEvent, LesionImage, ModelVersion, Patient, Prediction
from classifier.thumbnails import ensure_thumbnail
from tests.conftest import media_files
from tests.factories import make_image, make_lesion, make_patient, make_prediction, make_visit

pytestmark = pytest.mark.django_db

HEATMAP = {"method": "gradcam", "layer": "conv", "grid": [[0.0, 0.5], [1.0, 0.25]], "class": "mel"}


@pytest.fixture(autouse=True)
def forget_content_type_ids():
    """Emptying the installation makes content types anew; the test's rollback restores the old rows,
    so the ids Django cached in between must not outlive the test."""
    yield
    ContentType.objects.clear_cache()


@pytest.fixture
def records(owner, clinic, active_tiny_model, owner_web):
    """A clinic's patient with a lesion seen twice, a one-off upload still queued, pages read (audited),
    and a site-trained version's files."""
    lesion = make_lesion(make_patient(clinic, reference="MRN-7731", note="mole on the back"), note="changing")
    now = timezone.now()
    first = make_visit(owner, lesion, now - timedelta(days=90), score=0.31, model_version=active_tiny_model)
    second = make_visit(owner, lesion, now - timedelta(days=2), score=0.74, top_class="mel",
                        model_version=active_tiny_model, explanation=HEATMAP)  # fmt: skip
    for image in (first, second):
        ensure_thumbnail(image)
    make_prediction(owner, image=make_image(owner, clinician_note="left forearm"))
    for url in pages(second.latest_prediction_id, lesion.pk):
        assert owner_web.get(url).status_code == 200
    # Rows that point at what migrate makes (content types, permissions), whose ids differ between installations.
    owner.user_permissions.add(Permission.objects.get(codename="view_patient"))
    LogEntry.objects.create(user=owner, content_type=ContentType.objects.get_for_model(Patient), object_id="1",
                            object_repr="patient #1", action_flag=CHANGE, change_message="[]")  # fmt: skip
    trained = Path(settings.TRAINED_MODEL_ROOT) / "retrain-7-20261201"
    trained.mkdir(parents=True)
    (trained / "model.keras").write_bytes(b"\x00weights\xff" * 100)
    (trained / "card.json").write_text('{"version": "retrain-7-20261201"}')
    return second


def pages(prediction_id: int, lesion_id: int) -> list[str]:
    return [f"/predictions/{prediction_id}/", "/history/", f"/lesions/{lesion_id}/", "/patients/"]


def every_row() -> dict[str, list[dict]]:
    return {
        model._meta.label_lower: serializers.serialize(
            "python", model._base_manager.order_by("pk"), use_natural_foreign_keys=True
        )
        for model in backed_up_models()
    }


def every_file() -> dict[str, bytes]:
    roots = [Path(settings.MEDIA_ROOT), Path(settings.TRAINED_MODEL_ROOT)]
    return {f"{root}:{path.relative_to(root)}": path.read_bytes() for root in roots for path in root.rglob("*")
            if path.is_file()}  # fmt: skip


def rendered(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def flush_database() -> None:
    """Every row gone, inside the test's transaction: on PostgreSQL the foreign-key checks deferred
    to its commit must run first, or TRUNCATE refuses ("pending trigger events")."""
    from django.db import connection

    if connection.vendor != "postgresql":
        call_command("flush", interactive=False, verbosity=0)
        return
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    call_command("flush", interactive=False, verbosity=0)
    with connection.cursor() as cursor:  # and deferred again, as a restore's own transaction has them
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def wipe() -> None:
    """What a new installation is: a migrated database with no rows of its own, and no stored files."""
    flush_database()
    for root in (Path(settings.MEDIA_ROOT), Path(settings.TRAINED_MODEL_ROOT)):
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def renumber_what_migrate_made_for(model) -> None:
    """Give the model's content type and permissions new ids, as another installation's would have."""
    ContentType.objects.get_for_model(model).delete()
    ContentType.objects.clear_cache()
    create_permissions(apps.get_app_config(model._meta.app_label), verbosity=0)


def restore(path: Path) -> str:
    out = io.StringIO()
    call_command("restore", str(path), stdout=out)
    return out.getvalue()


def test_a_restored_backup_holds_the_same_rows_files_and_pages(records, owner_web, tmp_path):
    shown = {url: rendered(owner_web, url) for url in pages(records.latest_prediction_id, records.lesion_id)}
    rows, files = every_row(), every_file()
    assert rows["classifier.auditevent"] and rows["classifier.prediction"] and len(files) == 2 * 2 + 1 + 2
    archive = tmp_path / "site.tar"

    call_command("backup", str(archive), stdout=io.StringIO(), stderr=io.StringIO())
    wipe()
    before = ContentType.objects.get_for_model(Patient).pk
    renumber_what_migrate_made_for(Patient)
    assert ContentType.objects.get_for_model(Patient).pk != before
    assert not LesionImage.objects.exists() and media_files() == []
    assert ModelVersion.objects.get().name == "tiny-v1"  # the fresh install's own registration of the shipped one
    said = restore(archive)

    assert "Restored" in said
    assert every_row() == rows  # ids, times to the microsecond, heatmaps, audit events, the active version
    assert every_file() == files
    client = Client()
    client.force_login(get_user_model().objects.get(username="alice"))
    for url, page in shown.items():
        assert rendered(client, url) == page, url
    image = LesionImage.objects.get(pk=records.pk)
    response = client.get(f"/images/{image.pk}/file/")
    assert b"".join(response.streaming_content) == image.file.read()


def test_new_rows_after_a_restore_get_ids_after_the_restored_ones(records, owner, tmp_path):
    archive = tmp_path / "site.tar"
    call_command("backup", str(archive), stdout=io.StringIO(), stderr=io.StringIO())
    top = max(Prediction.objects.values_list("pk", flat=True))
    wipe()
    restore(archive)

    assert make_prediction(owner).pk > top


def test_it_refuses_an_installation_that_holds_rows_and_changes_nothing(records, tmp_path):
    archive = tmp_path / "site.tar"
    call_command("backup", str(archive), stdout=io.StringIO(), stderr=io.StringIO())
    rows, files = every_row(), every_file()

    with pytest.raises(CommandError, match=r"already holds rows \(.*auth\.user: 1.*\).*empty installation"):
        restore(archive)
    assert every_row() == rows and every_file() == files


def test_it_refuses_stored_files_in_an_otherwise_empty_installation(records, tmp_path):
    archive = tmp_path / "site.tar"
    call_command("backup", str(archive), stdout=io.StringIO(), stderr=io.StringIO())
    wipe()
    (Path(settings.MEDIA_ROOT) / "stray.png").write_bytes(b"x")

    with pytest.raises(CommandError, match="MEDIA_ROOT .* already holds files"):
        restore(archive)
    assert not LesionImage.objects.exists()


def test_a_damaged_archive_is_refused_naming_the_damaged_file_and_restores_nothing(records, tmp_path):
    archive = tmp_path / "site.tar"
    call_command("backup", str(archive), stdout=io.StringIO(), stderr=io.StringIO())
    data = bytearray(archive.read_bytes())
    stored = records.file.open("rb").read()
    at = data.find(stored[100:140])  # inside the stored picture's bytes
    data[at] ^= 0xFF
    archive.write_bytes(bytes(data))
    wipe()

    damaged = rf"media/{records.file.name} does not match .* SHA-256.*Nothing was restored"
    with pytest.raises(CommandError, match=damaged):
        restore(archive)
    assert not LesionImage.objects.exists() and not AuditEvent.objects.exists()
    assert media_files() == []


def test_an_archive_cut_short_is_refused_and_restores_nothing(records, tmp_path):
    archive = tmp_path / "site.tar"
    call_command("backup", str(archive), stdout=io.StringIO(), stderr=io.StringIO())
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    wipe()

    with pytest.raises(CommandError, match="cannot be restored: .*(cut short|no manifest)"):
        restore(archive)
    assert not LesionImage.objects.exists() and media_files() == []


def test_a_file_that_is_not_a_backup_is_refused_plainly(db, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("not a backup at all " * 100)

    with pytest.raises(CommandError, match="is not a lesionsite backup"):
        restore(other)


def with_manifest_changed(archive: Path, change) -> Path:
    """The same archive with its manifest edited (as a newer lesionsite's backup would differ)."""
    changed = archive.with_name("changed.tar")
    with tarfile.open(archive) as source, tarfile.open(changed, "w") as target:
        for info in source:
            data = source.extractfile(info).read()
            if info.name == "manifest.json":
                manifest = json.loads(data)
                change(manifest)
                data = json.dumps(manifest).encode()
                info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return changed


def test_a_backup_made_at_other_migrations_is_refused_naming_them(records, tmp_path):
    archive = tmp_path / "site.tar"
    call_command("backup", str(archive), stdout=io.StringIO(), stderr=io.StringIO())
    newer = with_manifest_changed(archive, lambda m: m["database"]["migrations"]["classifier"].append("0099_future"))
    wipe()

    with pytest.raises(CommandError, match="it has classifier.0099_future, which this installation lacks.*upgrade"):
        restore(newer)
    assert not LesionImage.objects.exists()
