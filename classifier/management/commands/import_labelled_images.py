from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from classifier.importing import import_labelled_images, read_labelled_metadata
from classifier.models import Clinic

IMPORT_USER = "dataset-import"
IMPORT_CLINIC = "Imported datasets"


class Command(BaseCommand):
    help = (
        "Import a labelled dataset — a folder with images/ and a HAM10000-style metadata CSV "
        "(image_id, dx, and optionally lesion_id, dx_type, age, sex, localization) — as labelled images "
        f"of a clinic (--clinic, default '{IMPORT_CLINIC}', made if missing), uploaded by the user '{IMPORT_USER}'. "
        "--as-patients groups the images by lesion_id into patients and lesions. "
        "Idempotent: images the clinic already holds (same SHA-256) are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path, help="e.g. ../shared/data/ham10000")
        parser.add_argument("--metadata", type=Path, help="CSV path (default: the folder's only *.csv)")
        parser.add_argument("--images", type=Path, help="images folder (default: <folder>/images)")
        parser.add_argument("--limit", type=int, help="import only the first N rows (for a quick trial)")
        parser.add_argument("--clinic", default=IMPORT_CLINIC, help=f"the clinic's name (default: {IMPORT_CLINIC})")
        parser.add_argument(
            "--as-patients",
            action="store_true",
            help="one patient per lesion_id (referenced by it), with one lesion at the row's localization "
            "holding the lesion's images, labelled with its diagnosis",
        )

    def handle(self, *args, folder: Path, metadata, images, limit, clinic: str, as_patients: bool, **opts):
        csv_path = metadata or self._only_csv(folder)
        images_dir = images or folder / "images"
        if not images_dir.is_dir():
            raise CommandError(f"{images_dir} is not a folder of images")
        try:
            frame = read_labelled_metadata(csv_path)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if limit is not None:
            frame = frame.head(limit)
        name = clinic.strip()
        if not name:
            raise CommandError("--clinic needs a name")
        target, made = Clinic.objects.get_or_create(name=name)
        if made:
            self.stdout.write(f"Made the clinic {target.name!r}: add members to it in the admin to see the images.")
        owner, _ = get_user_model().objects.get_or_create(username=IMPORT_USER, defaults={"is_active": False})

        report = import_labelled_images(
            images_dir, frame, owner, target, as_patients=as_patients, progress=self._progress
        )
        self.stdout.write("")
        patients = f" {report.patients_created} new patients;" if as_patients else ""
        self.stdout.write(
            f"Imported {report.created} images;{patients} {report.already_present} were already present; "
            f"{len(report.rejected)} rejected (clinic: {target.name})."
        )
        for reason in report.rejected[:20]:
            self.stdout.write(f"  rejected: {reason}")

    def _only_csv(self, folder: Path) -> Path:
        csvs = sorted(folder.glob("*.csv"))
        if len(csvs) != 1:
            raise CommandError(f"{folder} holds {len(csvs)} CSV files; name the metadata with --metadata")
        return csvs[0]

    def _progress(self, done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            width = 30
            filled = width * done // max(total, 1)
            self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
            self.stdout.flush()
