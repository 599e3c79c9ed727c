"""A backup of a site whose files are in an S3-compatible store holds them, the trained versions there included."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from classifier.backups import write_backup
from classifier.model_store import publish_version
from classifier.models import LesionImage
from tests.images import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_store(in_store, settings):
    settings.MODEL_VERSIONS_IN_STORE = True
    return in_store


def test_the_backup_reads_every_picture_and_stored_version_from_the_bucket(in_store, owner_api, tiny_model_root,
                                                                           tmp_path):  # fmt: skip
    owner_api.post("/api/v1/images/", {"file": [upload("mole.jpg", fmt="JPEG", size=(1600, 1200))]},
                   format="multipart")  # fmt: skip
    image = LesionImage.objects.get()
    folder = tmp_path / "trained-elsewhere"
    shutil.copytree(tiny_model_root / "tiny-v1", folder)
    (folder / "card.json").write_text(json.dumps(json.loads((folder / "card.json").read_text()) | {"version": "x"}))
    publish_version(folder)

    manifest = write_backup(tmp_path / "site.tar")

    members = {member["path"]: member for member in manifest["members"]}
    stored = in_store.keys()
    assert sorted(f"media/{key.removeprefix('site/')}" for key in stored) == sorted(
        path for path in members if path.startswith("media/")
    )
    for name in (image.file.name, image.working_file.name, "model-versions/trained-elsewhere/model.keras"):
        data = in_store.read(f"site/{name}")
        assert members[f"media/{name}"]["sha256"] == hashlib.sha256(data).hexdigest(), name
    assert manifest["missing_files"] == []
