"""Importing a labelled dataset (a folder of images and a HAM10000-style metadata CSV)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from classifier.lib.imaging import ImageRejected, clean_upload
from classifier.models import CLASS_CHOICES, METHOD_CHOICES, SEX_CHOICES, SITE_CHOICES, LesionImage, image_upload_path
from classifier.uploads import upload_limits

REQUIRED_COLUMNS = {"image_id", "dx"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class ImportReport:
    created: int = 0
    already_present: int = 0
    rejected: list[str] | None = None

    def __post_init__(self):
        self.rejected = self.rejected or []


def read_labelled_metadata(csv_path: Path) -> pd.DataFrame:
    frame = pd.read_csv(csv_path, dtype={"image_id": str, "lesion_id": str})
    missing = REQUIRED_COLUMNS - set(frame.columns)
    if missing:
        raise ValueError(f"{csv_path} lacks the columns {sorted(missing)}")
    unknown = sorted(set(frame["dx"]) - set(dict(CLASS_CHOICES)))
    if unknown:
        raise ValueError(f"{csv_path} has diagnoses outside the seven classes: {unknown}")
    return frame


def find_image(images_dir: Path, image_id: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = images_dir / f"{image_id}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def import_labelled_images(
    images_dir: Path,
    metadata: pd.DataFrame,
    owner,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportReport:
    """Store each listed image as a labelled image of ``owner``; skip ones already there (by SHA-256).

    Each image is stored in its own transaction, so an interrupted import keeps
    what it finished and a re-run picks up where it stopped.
    """
    report = ImportReport()
    known = set(LesionImage.objects.filter(owner=owner).values_list("sha256", flat=True))
    limits = upload_limits()
    total = len(metadata)
    for done, row in enumerate(_rows(metadata), start=1):
        path = find_image(images_dir, row["image_id"])
        if path is None:
            report.rejected.append(f"{row['image_id']}: no image file")
        else:
            try:
                clean = clean_upload(path.read_bytes(), limits, filename=path.name)
            except ImageRejected as exc:
                report.rejected.append(exc.message)
            else:
                if clean.sha256 in known:
                    report.already_present += 1
                else:
                    _store(owner, path.name, clean, row)
                    known.add(clean.sha256)
                    report.created += 1
        progress(done, total)
    return report


def _rows(metadata: pd.DataFrame) -> Iterator[dict]:
    for record in metadata.to_dict("records"):
        yield {key: (None if pd.isna(value) else value) for key, value in record.items()}


def _store(owner, filename: str, clean, row: dict) -> None:
    image = LesionImage(
        owner=owner,
        sha256=clean.sha256,
        original_filename=filename,
        source_format=clean.source_format,
        width=clean.width,
        height=clean.height,
        lesion_id=row.get("lesion_id") or "",
        age=int(row["age"]) if row.get("age") is not None else None,
        sex=row.get("sex") if row.get("sex") in dict(SEX_CHOICES) else "",
        site=row.get("localization") if row.get("localization") in dict(SITE_CHOICES) else "",
        diagnosis=row["dx"],
        diagnosis_method=row.get("dx_type") if row.get("dx_type") in dict(METHOD_CHOICES) else "",
        diagnosis_note="Imported from a labelled dataset.",
        labelled_at=timezone.now(),
    )
    name = image_upload_path(image, filename)
    wrote = False
    try:
        with transaction.atomic():
            if not default_storage.exists(name):
                name = default_storage.save(name, ContentFile(clean.png))
                wrote = True
            image.file.name = name
            image.save()
    except BaseException:
        if wrote:
            default_storage.delete(name)
        raise
