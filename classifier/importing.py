"""Importing a labelled dataset (a folder of images and a HAM10000-style metadata CSV) into a clinic.

With ``as_patients``, the images of each dataset lesion (HAM10000's ``lesion_id``) become
the pictures of one lesion of one patient, so lesion timelines can be tried on real
multi-image lesions: one patient per lesion (the dataset does not say which lesions share
a patient), referenced by the lesion id, the lesion at the row's ``localization``,
labelled with the row's diagnosis. The dataset has no dates: the pictures are taken when
they are imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from classifier.lib.imaging import ImageRejected, clean_upload
from classifier.models import (
    CLASS_CHOICES,
    METHOD_CHOICES,
    SEX_CHOICES,
    SITE_CHOICES,
    Clinic,
    Lesion,
    LesionImage,
    Patient,
)
from classifier.uploads import upload_limits, write_files

REQUIRED_COLUMNS = {"image_id", "dx"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMPORT_NOTE = "Imported from a labelled dataset."


@dataclass
class ImportReport:
    created: int = 0
    already_present: int = 0
    rejected: list[str] = field(default_factory=list)
    patients_created: int = 0


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
    clinic: Clinic,
    *,
    as_patients: bool = False,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportReport:
    """Store each listed image as a labelled image of ``clinic``, uploaded by ``owner``; skip ones
    the clinic already holds (by SHA-256). ``as_patients``: each dataset lesion becomes a patient
    with that lesion, holding its images.

    Each image is stored in its own transaction, so an interrupted import keeps
    what it finished and a re-run picks up where it stopped.
    """
    report = ImportReport()
    known = set(LesionImage.objects.filter(clinic=clinic).values_list("sha256", flat=True))
    lesions = _Lesions(clinic, report) if as_patients else None
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
                    _store(owner, clinic, path.name, clean, row, lesions)
                    known.add(clean.sha256)
                    report.created += 1
        progress(done, total)
    return report


def _rows(metadata: pd.DataFrame) -> Iterator[dict]:
    for record in metadata.to_dict("records"):
        yield {key: (None if pd.isna(value) else value) for key, value in record.items()}


def _label(row: dict) -> dict:
    return {
        "diagnosis": row["dx"],
        "diagnosis_method": row.get("dx_type") if row.get("dx_type") in dict(METHOD_CHOICES) else "",
        "diagnosis_note": IMPORT_NOTE,
        "labelled_at": timezone.now(),
    }


def _sex(row: dict) -> str:
    return row.get("sex") if row.get("sex") in dict(SEX_CHOICES) else ""


def _site(row: dict) -> str:
    return row.get("localization") if row.get("localization") in dict(SITE_CHOICES) else ""


class _Lesions:
    """The clinic's patient and lesion for each dataset lesion id, made on first use and remembered."""

    def __init__(self, clinic: Clinic, report: ImportReport):
        self.clinic, self.report, self.known = clinic, report, {}

    def for_row(self, row: dict) -> Lesion | None:
        source = row.get("lesion_id") or ""
        if not source:
            return None  # an image of no known lesion stays a one-off
        if source not in self.known:
            patient, created = Patient.objects.get_or_create(
                clinic=self.clinic, reference=source, defaults={"sex": _sex(row), "note": IMPORT_NOTE}
            )
            self.report.patients_created += created
            lesion = patient.lesions.first()
            if lesion is None:
                lesion = Lesion.objects.create(
                    patient=patient, label=source, site=_site(row) or "unknown", note=IMPORT_NOTE, **_label(row)
                )
            lesion.patient = patient
            self.known[source] = lesion
        return self.known[source]

    def forget(self, row: dict) -> None:
        self.known.pop(row.get("lesion_id") or "", None)


def _store(owner, clinic: Clinic, filename: str, clean, row: dict, lesions: _Lesions | None) -> None:
    now = timezone.now()
    image = LesionImage(
        owner=owner,
        clinic=clinic,
        created_at=now,
        taken_at=now,
        sha256=clean.sha256,
        original_filename=filename,
        source_format=clean.source_format,
        width=clean.width,
        height=clean.height,
        source_lesion_id=row.get("lesion_id") or "",
        age=int(row["age"]) if row.get("age") is not None else None,
        sex=_sex(row),
        site=_site(row),
        **_label(row),
    )
    written: list[str] = []
    try:
        with transaction.atomic():
            lesion = lesions.for_row(row) if lesions is not None else None
            if lesion is not None:
                image.lesion = lesion
                # The lesion's label is the image's (Lesion.set_label's rule), even if a row disagrees.
                for attribute, value in lesion.label_fields.items():
                    setattr(image, attribute, value)
            write_files(image, clean, written)
            image.save()
    except BaseException:
        for name in written:
            default_storage.delete(name)
        if lesions is not None:
            lesions.forget(row)  # its patient and lesion may have been rolled back with the image
        raise
