"""`manage.py backup` writes one private archive whose manifest holds versions, counts and every file's SHA-256."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import django
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from classifier.models import LesionImage
from tests.factories import make_image, make_prediction

pytestmark = pytest.mark.django_db


def backup(path: Path) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("backup", str(path), stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_the_manifest_records_versions_counts_and_the_sha256_of_every_file(owner, tmp_path):
    make_prediction(owner, image=make_image(owner))
    make_prediction(owner, image=make_image(owner), status="done", top_class="nv")
    archive = tmp_path / "site.tar"

    said = backup(archive)

    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        contents = {name: tar.extractfile(name).read() for name in names if name != "manifest.json"}
    assert names[-1] == "manifest.json" and names[0].startswith("database/")
    assert manifest["format"] == "lesionsite backup" and manifest["version"] == 1
    assert manifest["software"]["django"] == django.get_version()
    assert "0013_prediction_lesion_outline" in manifest["database"]["migrations"]["classifier"]
    rows = manifest["database"]["rows"]
    assert (rows["classifier.lesionimage"], rows["classifier.prediction"], rows["auth.user"]) == (2, 2, 1)
    assert "sessions.session" not in rows and "contenttypes.contenttype" not in rows
    assert manifest["media"]["files"] == 2 and manifest["missing_files"] == []
    for member in manifest["members"]:
        data = contents[member["path"]]
        assert (len(data), hashlib.sha256(data).hexdigest()) == (member["size"], member["sha256"])
    for image in LesionImage.objects.all():
        stored = (Path(settings.MEDIA_ROOT) / image.file.name).read_bytes()
        assert contents[f"media/{image.file.name}"] == stored
    assert "2 stored files" in said and "not encrypted" in said


def test_the_archive_is_the_owners_alone_and_never_overwrites_a_file(owner, tmp_path):
    make_image(owner)
    archive = tmp_path / "site.tar"
    backup(archive)
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    before = archive.read_bytes()

    with pytest.raises(CommandError, match="already exists: give a new file name"):
        backup(archive)
    assert archive.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site.tar"]  # no .partial left behind


def test_a_row_whose_file_is_gone_is_named_in_the_manifest(owner, tmp_path):
    image = make_image(owner)
    (Path(settings.MEDIA_ROOT) / image.file.name).unlink()
    archive = tmp_path / "site.tar"

    said = backup(archive)

    with tarfile.open(archive) as tar:
        assert json.load(tar.extractfile("manifest.json"))["missing_files"] == [image.file.name]
    assert "1 files that rows name were not found" in said


def test_verify_only_checks_the_archive_and_changes_nothing(owner, tmp_path):
    make_image(owner)
    archive = tmp_path / "site.tar"
    backup(archive)
    out = io.StringIO()

    call_command("restore", str(archive), "--verify-only", stdout=out)

    assert "is whole: 2 files match their SHA-256" in out.getvalue()  # the rows, the picture
    assert LesionImage.objects.count() == 1


def test_a_backup_left_half_written_is_named_not_overwritten(owner, tmp_path):
    (tmp_path / "site.tar.partial").write_bytes(b"an interrupted run")

    with pytest.raises(CommandError, match=r"site.tar.partial exists: .* interrupted \(delete it then\)"):
        backup(tmp_path / "site.tar")
    assert not (tmp_path / "site.tar").exists()
