"""`manage.py remove_orphan_files` deletes old stored pictures no image names, and nothing else."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from classifier.thumbnails import ensure_thumbnail, thumbnail_name
from tests.conftest import media_files
from tests.factories import make_image

pytestmark = pytest.mark.django_db

DAY = 24 * 3600


def stored_file(name: str, age_seconds: float = 0) -> Path:
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left behind")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def sweep(*args) -> str:
    out = io.StringIO()
    call_command("remove_orphan_files", *args, stdout=out)
    return out.getvalue()


def test_it_deletes_old_orphans_and_keeps_used_new_and_unrelated_files(owner):
    image = make_image(owner)
    ensure_thumbnail(image)
    for name in (image.file.name, thumbnail_name(image.sha256)):
        os.utime(Path(settings.MEDIA_ROOT) / name, (time.time() - 3 * DAY, time.time() - 3 * DAY))
    old_picture = stored_file("images/ab/" + "ab" * 32 + ".png", age_seconds=2 * DAY)
    old_thumbnail = stored_file("thumbs/cd/" + "cd" * 32 + ".webp", age_seconds=2 * DAY)
    in_flight = stored_file("images/ef/" + "ef" * 32 + ".png", age_seconds=60)  # an upload not yet committed
    unrelated = stored_file("notes/readme.txt", age_seconds=9 * DAY)

    said = sweep()

    assert "2 orphan files older than 24 hours deleted." in said
    assert not old_picture.exists() and not old_thumbnail.exists()
    assert in_flight.exists() and unrelated.exists()
    assert (Path(settings.MEDIA_ROOT) / image.file.name).exists()
    assert (Path(settings.MEDIA_ROOT) / thumbnail_name(image.sha256)).exists()


def test_a_dry_run_lists_them_and_deletes_nothing(db):
    orphan = stored_file("images/ab/" + "ab" * 32 + ".png", age_seconds=2 * DAY)

    said = sweep("--dry-run")

    assert f"would delete images/ab/{'ab' * 32}.png" in said and "none deleted" in said
    assert orphan.exists() and len(media_files()) == 1


def test_it_refuses_an_age_that_would_race_uploads(db):
    with pytest.raises(CommandError, match="--older-than-hours must be at least 1, not 0"):
        sweep("--older-than-hours", "0")
