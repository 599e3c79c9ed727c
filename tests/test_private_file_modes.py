"""Stored pictures, their folders, trained versions and the SQLite database are readable by their owner only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from classifier.models import LesionImage
from classifier.private_files import make_private
from classifier.thumbnails import thumbnail_name
from tests.conftest import REPO_ROOT
from tests.images import upload


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.django_db
def test_an_uploaded_picture_its_thumbnail_and_their_folders_are_the_owners_alone(owner_api):
    response = owner_api.post("/api/v1/images/", {"file": [upload("mole.png")]}, format="multipart")
    assert response.status_code == 201
    image = LesionImage.objects.get(pk=response.json()["images"][0]["id"])
    media = Path(settings.MEDIA_ROOT)

    for name in (image.file.name, thumbnail_name(image.sha256)):
        path = media / name
        assert mode(path) == 0o600, name
        assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700, name


@pytest.mark.django_db
def test_the_test_database_file_this_process_opened_is_the_owners_alone():
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL keeps its own files; this is the SQLite file's rule")
    connection.ensure_connection()
    assert mode(Path(connection.settings_dict["NAME"])) == 0o600


def test_a_database_made_by_migrate_is_the_owners_alone(tmp_path):
    database = tmp_path / "var" / "db.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "LESIONSITE_VAR_DIR": str(tmp_path / "var"),
           "MODEL_ROOT": str(tmp_path / "no-models"), "DJANGO_SETTINGS_MODULE": "lesionsite.settings"}  # fmt: skip
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO_ROOT, env=env, check=True, capture_output=True, umask=0o022,
    )  # fmt: skip

    assert mode(database) == 0o600
    assert mode(tmp_path / "var") == 0o700


def test_a_trained_versions_folder_is_made_the_owners_alone(tmp_path):
    version = tmp_path / "retrain-1"
    (version / "assets").mkdir(parents=True)
    (version / "model.keras").write_bytes(b"weights")
    (version / "assets" / "card.json").write_text("{}")
    for path in (version, version / "assets", version / "model.keras", version / "assets" / "card.json"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)

    make_private(version)

    assert [mode(version), mode(version / "assets")] == [0o700, 0o700]
    assert [mode(version / "model.keras"), mode(version / "assets" / "card.json")] == [0o600, 0o600]
