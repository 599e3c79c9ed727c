"""Accepting uploads: validate every file, store all or nothing, enqueue after commit."""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import PurePath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from classifier.lib.imaging import CleanImage, ImageRejected, UploadLimits, clean_upload
from classifier.models import (
    BatchEntry,
    Clinic,
    Lesion,
    LesionImage,
    ModelVersion,
    Prediction,
    UploadBatch,
    image_upload_path,
    working_copy_path,
)
from classifier.object_storage import STORAGE_ERRORS, UPLOAD_UNAVAILABLE
from classifier.thumbnails import store_thumbnail

logger = logging.getLogger(__name__)


class UploadRejected(Exception):
    """The request as a whole cannot be accepted (as opposed to one bad file)."""

    def __init__(self, message: str, code: str, http_status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status

    def as_dict(self) -> dict:
        """The JSON body of the refusal, as the API and the upload page answer it."""
        return {"detail": self.message, "code": self.code}


class UploadRefused(ImageRejected):
    """Some files of the request were refused; `refused` holds every one of them.

    It is the ImageRejected of the first refused file (code, message, filename), so
    code that handles one bad file keeps working, and it carries the others:
    `refused` maps each refused file's position in the request to its rejection.
    """

    def __init__(self, refused: dict[int, ImageRejected], file_count: int) -> None:
        first = next(iter(refused.values()))
        others = len(refused) - 1
        message = first.message
        if others:
            message += f" {others} more file{'s were' if others > 1 else ' was'} refused too: see errors."
        super().__init__(first.code, message, first.filename)
        self.refused = refused
        self.file_count = file_count
        # 413 says "send fewer bytes"; that is the whole remedy only when every
        # refused file is too large. Any other refusal makes the request a 400.
        self.http_status = 413 if all(r.http_status == 413 for r in refused.values()) else 400

    @property
    def rejections(self) -> list[ImageRejected]:
        return list(self.refused.values())

    def as_dict(self) -> dict:
        """The JSON body of the refusal: the first refused file at the top, as before, and every one in errors."""
        errors = [
            {"index": index, "file": r.filename, "code": r.code, "detail": r.message}
            for index, r in self.refused.items()
        ]
        return {"detail": self.message, "code": self.code, "file": self.filename, "errors": errors}


@dataclass(frozen=True)
class StoredUpload:
    image: LesionImage
    prediction: Prediction
    created: bool  # False when the clinic already held these exact bytes
    # For a known image: the fields this request gave (clinical details, lesion, taken_at) that
    # differ from the stored ones. They are not applied: the stored image keeps the details its
    # reading was made with (a one-off upload is attached to a lesion from its result page).
    ignored_fields: tuple[str, ...] = ()


def upload_limits() -> UploadLimits:
    return UploadLimits(
        max_bytes=settings.UPLOAD_MAX_BYTES,
        max_pixels=settings.UPLOAD_MAX_PIXELS,
        min_side=settings.UPLOAD_MIN_SIDE,
    )


def display_name(filename: str) -> str:
    """The client's file name made safe to show: no folders, no control characters."""
    base = PurePath(filename.replace("\\", "/")).name
    printable = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    return printable.strip()[:255]


def validate_files(files) -> list[tuple[str, CleanImage]]:
    """Decode every file; any bad one refuses the whole request, naming every bad file with its reason."""
    if not files:
        raise UploadRejected("No file was uploaded: attach one or more images as 'file'.", code="no_file")
    if len(files) > settings.UPLOAD_MAX_FILES:
        raise UploadRejected(
            f"{len(files)} files were uploaded at once; the limit is {settings.UPLOAD_MAX_FILES}.",
            code="too_many_files",
            http_status=413,
        )
    limits = upload_limits()
    cleaned, refused = [], {}
    for index, upload in enumerate(files):
        name = display_name(upload.name or "")
        try:
            cleaned.append((name, clean_upload(upload, limits, filename=name)))
        except ImageRejected as rejection:
            refused[index] = rejection
    if refused:
        raise UploadRefused(refused, file_count=len(files))
    return cleaned


def not_in_a_clinic() -> UploadRejected:
    return UploadRejected(
        "You are not a member of any clinic, so there is nowhere to store the upload: "
        "ask a clinic manager or an administrator to add you to one.",
        code="no_clinic",
        http_status=403,
    )


def taken_on(day: date) -> datetime:
    """A day a picture was taken as a moment: its noon in the site's time zone (the same day
    wherever it is read, within 12 hours of it), or now when noon today has not come yet."""
    noon = timezone.make_aware(datetime.combine(day, time(12)))
    return min(noon, timezone.now())


def taken_at_for(clean: CleanImage, given: datetime | None, uploaded_at: datetime) -> datetime:
    """When the picture was taken: as given, else the camera's EXIF date when it is sane, else the upload's.

    A naive EXIF date is the camera's clock, read in the site's TIME_ZONE; a date after the
    upload (a clock set wrong) is not believed.
    """
    if given is not None:
        return given
    taken = clean.taken_at
    if taken is None:
        return uploaded_at
    if timezone.is_naive(taken):
        try:
            taken = timezone.make_aware(taken)
        except (ValueError, OverflowError):  # a local time that does not exist (a DST change)
            return uploaded_at
    return taken if taken <= uploaded_at else uploaded_at


def store_uploads(
    owner,
    files,
    *,
    clinic: Clinic | None,
    lesion: Lesion | None = None,
    taken_at: datetime | None = None,
    age=None,
    sex: str = "",
    site: str = "",
) -> tuple[UploadBatch | None, list[StoredUpload]]:
    """Validate, then store every file into ``clinic`` (and ``lesion``, one of its lesions) with a
    queued prediction, in one transaction.

    Raises UploadRefused (an ImageRejected) or UploadRejected before anything is written. If
    anything fails while storing, the transaction rolls back and the files
    written so far are removed, so neither an orphan row nor an orphan file stays.
    Predictions are enqueued only once the transaction has committed.
    """
    if clinic is None:
        raise not_in_a_clinic()
    if lesion is not None and lesion.patient.clinic_id != clinic.pk:
        raise ValueError(f"lesion {lesion.pk} is not in clinic {clinic.pk}")  # the callers looked it up there
    cleaned = validate_files(files)
    written: list[str] = []
    try:
        with transaction.atomic():
            batch, stored = _store(
                owner, clinic, cleaned, written, lesion=lesion, taken_at=taken_at, age=age, sex=sex, site=site
            )
    except BaseException as exc:
        _remove(written)
        if isinstance(exc, STORAGE_ERRORS):
            logger.error("upload: the file store is unavailable: %s", exc)
            raise UploadRejected(UPLOAD_UNAVAILABLE, code="storage_unavailable", http_status=503) from exc
        raise
    for item in stored:
        logger.info(
            "prediction %s: %s for image %s",
            item.prediction.pk,
            "queued" if item.created else "existing upload returned",
            item.image.pk,
            extra={"prediction_id": item.prediction.pk, "image_id": item.image.pk},
        )
    return batch, stored


def _remove(written: list[str]) -> None:
    """Delete what this request wrote; a store that went away meanwhile keeps what it has (the
    orphan sweep, classifier.stored_files, removes files no row names)."""
    for name in written:
        try:
            default_storage.delete(name)
        except STORAGE_ERRORS as exc:
            logger.warning("upload: could not remove %s after a failure: %s", name, exc)


def _store(
    owner, clinic, cleaned, written, *, lesion, taken_at, **clinical
) -> tuple[UploadBatch | None, list[StoredUpload]]:
    # A fixed number of queries per request, not three per file: one to find the clinic's
    # earlier uploads of these bytes with their latest predictions, one INSERT for the new
    # images, one for their predictions (queue_for) and one for the batch's entries.
    version = ModelVersion.active()
    uploaded_at = timezone.now()
    batch = UploadBatch.objects.create(owner=owner, clinic=clinic, created_at=uploaded_at) if len(cleaned) > 1 else None
    given = {key: value for key, value in clinical.items() if value not in (None, "")}
    # What a known image is compared with, by the attribute that holds it.
    compared = {**given, **({"lesion_id": lesion.pk} if lesion else {}), **({"taken_at": taken_at} if taken_at else {})}
    digests = {clean.sha256 for _, clean in cleaned}
    earlier = LesionImage.objects.filter(clinic=clinic, sha256__in=digests).select_related("latest_prediction")
    existing = {image.sha256: image for image in earlier}
    # An image of a labelled lesion carries the lesion's label from the start (Lesion.set_label's rule).
    label = lesion.label_fields if lesion is not None and lesion.diagnosis else {}

    new_images: dict[str, LesionImage] = {}
    for name, clean in cleaned:
        if clean.sha256 in existing or clean.sha256 in new_images:
            continue  # uploaded before, or twice in this request
        image = LesionImage(
            owner=owner,
            clinic=clinic,
            lesion=lesion,
            batch=batch,
            created_at=uploaded_at,
            taken_at=taken_at_for(clean, taken_at, uploaded_at),
            **label,
            sha256=clean.sha256,
            original_filename=name,
            source_format=clean.source_format,
            width=clean.width,
            height=clean.height,
            **given,
        )
        write_files(image, clean, written)
        new_images[clean.sha256] = image
    LesionImage.objects.bulk_create(new_images.values())

    # An earlier upload whose predictions were all deleted gets a new one, like a new image.
    needing = list(new_images.values()) + [image for image in existing.values() if image.latest_prediction is None]
    created = Prediction.objects.queue_for(needing, version)  # sent to the workers once committed
    fresh = {prediction.image_id: prediction for prediction in created}

    stored, seen = [], set()
    for _, clean in cleaned:
        image = existing.get(clean.sha256) or new_images[clean.sha256]
        is_new = image.pk in fresh and clean.sha256 not in seen
        known = clean.sha256 in existing
        ignored = tuple(
            key.removesuffix("_id") for key, value in compared.items() if known and getattr(image, key) != value
        )
        stored.append(StoredUpload(image, fresh.get(image.pk) or image.latest_prediction, is_new, ignored))
        seen.add(clean.sha256)
    if batch is not None:
        _add_entries(batch, stored, set(existing))
    return batch, stored


def _add_entries(batch: UploadBatch, stored: list[StoredUpload], known: set[str]) -> None:
    """The batch lists every distinct file sent, known ones included, in the order sent."""
    entries, listed = [], set()
    for item in stored:
        if item.image.pk in listed:
            continue
        listed.add(item.image.pk)
        entries.append(
            BatchEntry(
                batch=batch,
                image=item.image,
                prediction=item.prediction,
                already_uploaded=item.image.sha256 in known,
                position=len(entries),
            )
        )
    BatchEntry.objects.bulk_create(entries)


def write_files(image: LesionImage, clean: CleanImage, written: list[str]) -> None:
    """Store the picture, its working copy and its thumbnail, each once per content (by SHA-256)."""
    thumbnail = store_thumbnail(image.sha256, clean.thumbnail)
    if thumbnail is not None:  # None: identical pixels already have one
        written.append(thumbnail)
    image.file.name = _write_once(
        image_upload_path(image, f"upload.{clean.original_extension}"), clean.original, written
    )
    if clean.working is not None:
        image.working_file.name = _write_once(working_copy_path(image), clean.working, written)


def _write_once(name: str, content: bytes, written: list[str]) -> str:
    if default_storage.exists(name):
        # Content-addressed: another clinic's identical upload already wrote this file.
        return name
    saved = default_storage.save(name, ContentFile(content))
    written.append(saved)
    return saved


__all__ = ["ImageRejected", "UploadRefused", "UploadRejected", "StoredUpload", "store_uploads"]
