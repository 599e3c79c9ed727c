"""A clinic's history: its images with the latest prediction, searched, filtered, sorted, exported."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import F, Q, QuerySet

from classifier.models import LesionImage, Prediction
from training.classes import FULL_NAMES


def sort_orders(reading: str = "prediction_") -> dict[str, tuple[str, tuple]]:
    """Sort keys offered on the history page and the API's lists: (label, ordering).

    "Most suspicious" is the malignancy score high to low, "least confident" the top
    class's probability low to high; ties: newest first. `reading` prefixes the
    reading's fields: "prediction_" on images annotated by annotate_latest_prediction(),
    "" on predictions themselves.
    """
    newest = (F("created_at").desc(), F("id").desc())
    return {
        "newest": ("Newest first", newest),
        "oldest": ("Oldest first", (F("created_at").asc(), F("id").asc())),
        "malignant": ("Most suspicious first", (F(f"{reading}malignant_probability").desc(nulls_last=True), *newest)),
        "confidence": ("Least confident first", (F(f"{reading}top_probability").asc(nulls_last=True), *newest)),
    }


SORTS = sort_orders()
DEFAULT_SORT = "newest"

# The latest prediction's fields that the history shows, filters on and exports.
_LATEST_FIELDS = {
    "prediction_id": "id",
    "prediction_status": "status",
    "prediction_top_class": "top_class",
    "prediction_top_probability": "top_probability",
    "prediction_malignant_probability": "malignant_probability",
    "prediction_is_malignant": "is_malignant",
    "prediction_is_uncertain": "is_uncertain",
    "prediction_is_out_of_distribution": "is_out_of_distribution",
    "prediction_model_version": "model_version__name",
    "prediction_error": "error",
}


def annotate_latest_prediction(images: QuerySet[LesionImage]) -> QuerySet[LesionImage]:
    """Each image with its latest prediction (LesionImage.latest_prediction, one join) and that
    prediction's fields as prediction_<field>, the names the filters, sorts and CSV use."""
    annotations = {name: F(f"latest_prediction__{field}") for name, field in _LATEST_FIELDS.items()}
    return images.select_related("latest_prediction__model_version").annotate(**annotations)


def clinic_images(clinic) -> QuerySet[LesionImage]:
    """The clinic's images, whoever uploaded them, each with its latest prediction, patient and lesion.

    Admins too see only their current clinic's here (the Django admin lists everything).
    """
    images = LesionImage.objects.in_clinic(clinic).select_related("lesion__patient")
    return annotate_latest_prediction(images)


def has_reading(reading: str = "prediction_") -> Q:
    """Rows whose prediction is a reading: an out-of-distribution picture has none.

    Such a prediction matches no class and neither value of the malignancy flag.
    `reading` prefixes the fields as in sort_orders(). Spelled out for NULL (no
    prediction yet, or none made): excluding `is_out_of_distribution=True` on an
    annotation would drop those rows too.
    """
    flag = f"{reading}is_out_of_distribution"
    return Q(**{f"{flag}__isnull": True}) | Q(**{flag: False})


def apply_filters(images: QuerySet[LesionImage], wanted: dict[str, Any]) -> QuerySet[LesionImage]:
    """Narrow and order `clinic_images()` by a HistoryFilterForm's cleaned data."""
    if wanted.get("q"):
        text = wanted["q"]
        images = images.filter(
            Q(original_filename__icontains=text)
            | Q(clinician_note__icontains=text)
            | Q(lesion__patient__reference__icontains=text)
        )
    if wanted.get("patient"):
        images = images.filter(lesion__patient=wanted["patient"])
    if wanted.get("top_class"):
        images = images.filter(has_reading(), prediction_top_class=wanted["top_class"])
    if wanted.get("malignant") in ("yes", "no"):
        images = images.filter(prediction_is_malignant=wanted["malignant"] == "yes")
    if wanted.get("status"):
        images = images.filter(prediction_status=wanted["status"])
    if wanted.get("date_from"):
        images = images.filter(created_at__date__gte=wanted["date_from"])
    if wanted.get("date_to"):
        images = images.filter(created_at__date__lte=wanted["date_to"])
    _, ordering = SORTS.get(wanted.get("sort") or DEFAULT_SORT, SORTS[DEFAULT_SORT])
    return images.order_by(*ordering)


# --- CSV export

CSV_COLUMNS = [
    "image_id",
    "file_name",
    "uploaded_at",
    "taken_at",
    "patient",
    "lesion_id",
    "lesion",
    "age",
    "sex",
    "site",
    "status",
    "top_class",
    "top_class_name",
    "top_probability",
    "malignant_probability",
    "malignancy_flag",
    "uncertain",
    "out_of_distribution",
    "model_version",
    "clinician_note",
]

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); tab and carriage return are on OWASP's list too.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Text a spreadsheet would evaluate is prefixed with a single quote; numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _rounded(value: float | None) -> Any:
    return "" if value is None else round(value, 4)


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def csv_row(image: LesionImage) -> list[Any]:
    """One exported image; an out-of-distribution picture has no reading, so its class, scores and flag are blank."""
    read = image.prediction_status == Prediction.Status.DONE and not image.prediction_is_out_of_distribution
    top_class = (image.prediction_top_class or "") if read else ""
    row = [
        image.pk,
        image.original_filename,
        image.created_at.isoformat(),
        image.taken_at.isoformat(),
        image.lesion.patient.reference if image.lesion else "",
        image.lesion_id or "",
        str(image.lesion) if image.lesion else "",
        "" if image.age is None else image.age,
        image.sex,
        image.site,
        image.prediction_status or "",
        top_class,
        FULL_NAMES.get(top_class, ""),
        _rounded(image.prediction_top_probability) if read else "",
        _rounded(image.prediction_malignant_probability) if read else "",
        _yes_no(image.prediction_is_malignant) if read else "",
        _yes_no(image.prediction_is_uncertain),
        _yes_no(image.prediction_is_out_of_distribution),
        image.prediction_model_version or "",
        image.clinician_note,
    ]
    return [csv_safe(cell) for cell in row]


class _Echo:
    """A file-like object whose write() returns what it was given, for csv.writer to stream through."""

    def write(self, value: str) -> str:
        return value


def csv_lines(images: Iterable[LesionImage]) -> Iterator[str]:
    """The export as CSV lines, produced as the rows are read (never the whole file in memory)."""
    writer = csv.writer(_Echo())
    # A byte-order mark, so spreadsheet programs read non-ASCII file names and notes as UTF-8.
    yield "\ufeff" + writer.writerow(CSV_COLUMNS)
    for image in images:
        yield writer.writerow(csv_row(image))
