"""What the patients list, the patient and lesion pages and their PDF reports show, built from the rows.

Views stay thin (access check, one call here, render). This module turns a lesion's
images and their latest predictions into the plain data classifier.lib works on
(changes.Visit, score_chart.ScorePoint, bodymap.Pin, pdf_report's sections) and hands
back what the templates need, in a fixed number of queries whatever the number of
lesions or pictures. A lesion's pictures are its visits: each image is one visit, at
the date it was taken, read by its latest prediction.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Count, Max, QuerySet
from django.urls import reverse
from django.utils import timezone

from classifier import thumbnails
from classifier.lib import bodymap, changes, pdf_report, score_chart
from classifier.lib.heatmap_picture import heatmap_over
from classifier.models import Lesion, LesionImage, Patient, Prediction

# --- One visit: a picture and its latest reading ------------------------------------


def no_reading_reason(prediction: Prediction | None) -> str:
    """Why a picture has no reading, in the words changes.Visit and score_chart.ScorePoint take; "" if it has one."""
    if prediction is None:
        return "no prediction"
    if prediction.status in (Prediction.Status.QUEUED, Prediction.Status.RUNNING):
        return "pending"
    if prediction.status == Prediction.Status.FAILED:
        return "failed"
    if prediction.is_out_of_distribution:
        return "out of distribution"
    if prediction.malignant_probability is None:
        return "no score"
    return ""


def reading_words(prediction: Prediction | None) -> str:
    """The reading as one line, as the timeline, the comparison and the PDF show it."""
    reason = no_reading_reason(prediction)
    if not reason:
        return f"{prediction.top_class_name}, {round(100 * prediction.top_probability)} %"
    if reason == "pending":
        return "Waiting for the model"
    if reason == "failed":
        return "No reading: the model could not read this picture"
    if reason == "out of distribution":
        return "No reading: not like a dermatoscopic image"
    return "No reading"


def lesion_area(prediction: Prediction | None) -> float | None:
    """The lesion's share of what the model saw, for a version that outlines the lesion; None otherwise."""
    outline = prediction.lesion_outline if prediction is not None else None
    area = outline.get("area") if isinstance(outline, dict) else None
    return float(area) if isinstance(area, int | float) and not isinstance(area, bool) else None


def local_moment(moment: dt.datetime) -> dt.datetime:
    """A stored (UTC) time in the site's time zone, so dates read as the clinic's dates."""
    return timezone.localtime(moment) if timezone.is_aware(moment) else moment


def visit_of(image: LesionImage) -> changes.Visit:
    prediction = image.latest_prediction
    reason = no_reading_reason(prediction)
    version = prediction.model_version.name if prediction is not None and prediction.model_version else ""
    if reason:
        return changes.Visit(image.pk, local_moment(image.taken_at), version, no_reading=reason)
    return changes.Visit(
        image.pk,
        local_moment(image.taken_at),
        version,
        malignancy_score=prediction.malignant_probability,
        top_class=prediction.top_class,
        lesion_area=lesion_area(prediction),
    )


def score_point_of(image: LesionImage) -> score_chart.ScorePoint:
    prediction = image.latest_prediction
    reason = no_reading_reason(prediction)
    taken = local_moment(image.taken_at)
    if reason:
        return score_chart.ScorePoint(taken, None, no_reading=reason)
    return score_chart.ScorePoint(
        taken,
        prediction.malignant_probability,
        top_class=prediction.top_class,
        model_version=prediction.model_version.name if prediction.model_version else "",
        threshold=prediction.flag_threshold,
        flagged=prediction.is_malignant,
    )


def compare_visits(images: Iterable[LesionImage]) -> changes.Changes:
    """The change flags between a lesion's consecutive visits, at the site's thresholds."""
    return changes.compare_visits(
        [visit_of(image) for image in images],
        score_rise=settings.CHANGE_SCORE_RISE,
        area_change=settings.CHANGE_AREA_FRACTION,
    )


@dataclass(frozen=True)
class VisitRow:
    """One picture on a lesion's timeline, with the change flags raised at it (against the visit before)."""

    image: LesionImage
    flags: tuple[changes.ChangeFlag, ...] = ()
    notes: tuple[changes.ChangeNote, ...] = ()

    @property
    def prediction(self) -> Prediction | None:
        return self.image.latest_prediction

    @property
    def taken_at(self) -> dt.datetime:
        return local_moment(self.image.taken_at)

    @property
    def has_reading(self) -> bool:
        return not no_reading_reason(self.prediction)

    @property
    def reading(self) -> str:
        return reading_words(self.prediction)

    @property
    def is_suspicious(self) -> bool:
        return self.has_reading and bool(self.prediction.is_malignant)

    @property
    def state(self) -> str:
        prediction = self.prediction
        return bodymap.reading_state(
            prediction.status if prediction else None, self.has_reading, prediction.is_malignant if prediction else None
        )

    @property
    def model_version(self) -> str:
        version = self.prediction.model_version if self.prediction else None
        return version.name if version else ""


# --- A lesion: its visits, their changes, its latest state ---------------------------


@dataclass(frozen=True)
class LesionRecord:
    lesion: Lesion
    visits: tuple[VisitRow, ...]  # oldest taken first
    changes: changes.Changes

    @property
    def latest(self) -> VisitRow | None:
        """The newest picture, read or not: the body map's pin shows its state (pending, say)."""
        return self.visits[-1] if self.visits else None

    @property
    def latest_reading(self) -> VisitRow | None:
        """The newest picture that has a reading: what the lesion looks like to the model now."""
        return next((visit for visit in reversed(self.visits) if visit.has_reading), None)

    @property
    def state(self) -> str:
        return self.latest.state if self.latest else bodymap.reading_state(None, False, None)

    @property
    def attention(self) -> tuple[str, ...]:
        """Why the lesion needs a look: its latest reading is suspicious, or changed from the visit before."""
        latest = self.latest_reading
        if latest is None:
            return ()
        reasons = ["suspicious"] if latest.is_suspicious else []
        if latest.flags:
            reasons.append("changed")
        return tuple(reasons)

    @property
    def point(self) -> bodymap.MapPoint | None:
        lesion = self.lesion
        if not lesion.map_view or lesion.map_x is None or lesion.map_y is None:
            return None
        return bodymap.MapPoint(lesion.map_view, lesion.map_x, lesion.map_y)

    @property
    def url(self) -> str:
        return reverse("classifier:lesion", args=[self.lesion.pk])

    def visit(self, image_id) -> VisitRow | None:
        return next((visit for visit in self.visits if str(visit.image.pk) == str(image_id)), None)


def _timeline_images(lesions: Sequence[Lesion]) -> dict[int, list[LesionImage]]:
    """Every image of the lesions with its latest reading, by lesion, oldest taken first: one query."""
    images = (
        LesionImage.objects.filter(lesion__in=[lesion.pk for lesion in lesions])
        .select_related("latest_prediction__model_version")
        .order_by("taken_at", "id")
    )
    by_lesion: dict[int, list[LesionImage]] = defaultdict(list)
    for image in images:
        by_lesion[image.lesion_id].append(image)
    return by_lesion


def _record(lesion: Lesion, images: list[LesionImage]) -> LesionRecord:
    found = compare_visits(images)
    visits = tuple(
        VisitRow(
            image,
            found.flags_for(image.pk),
            tuple(note for note in found.notes if note.visit.key == image.pk),
        )
        for image in images
    )
    return LesionRecord(lesion, visits, found)


def lesion_records(lesions: Iterable[Lesion]) -> list[LesionRecord]:
    """A record per lesion, in the order given; two queries whatever the number (the lesions, their images)."""
    lesions = list(lesions)
    images = _timeline_images(lesions)
    return [_record(lesion, images.get(lesion.pk, [])) for lesion in lesions]


def lesion_record(lesion: Lesion) -> LesionRecord:
    return lesion_records([lesion])[0]


def image_count(patient: Patient) -> int:
    return LesionImage.objects.filter(lesion__patient=patient).count()


def patient_lesions(patient: Patient) -> list[LesionRecord]:
    """The patient's lesions, oldest first, each with its visits."""
    return lesion_records(patient.lesions.order_by("created_at", "id"))


# --- The patients list -----------------------------------------------------------------


@dataclass(frozen=True)
class PatientRow:
    patient: Patient
    lesion_count: int
    last_visit: dt.datetime | None  # when the newest picture of any of their lesions was taken
    attention: tuple[tuple[Lesion, tuple[str, ...]], ...]  # lesions that need a look, and why

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention)


def clinic_patients(clinic, search: str = "") -> QuerySet:
    """The clinic's patients whose reference contains ``search``, by reference, with their lesion count and
    last visit: one query (the list's page of it)."""
    patients = Patient.objects.in_clinic(clinic).search(search)
    patients = patients.annotate(
        lesion_count=Count("lesions", distinct=True), last_visit=Max("lesions__images__taken_at")
    )
    return patients.order_by("reference", "id")


def patient_rows(patients: Iterable[Patient]) -> list[PatientRow]:
    """One row per patient of a page of clinic_patients(), with the lesions that need a look: two queries more."""
    patients = list(patients)
    lesions = Lesion.objects.filter(patient__in=[patient.pk for patient in patients]).order_by("created_at", "id")
    by_patient: dict[int, list[LesionRecord]] = defaultdict(list)
    for record in lesion_records(lesions):
        by_patient[record.lesion.patient_id].append(record)
    rows = []
    for patient in patients:
        flagged = tuple((r.lesion, r.attention) for r in by_patient.get(patient.pk, []) if r.attention)
        last = local_moment(patient.last_visit) if patient.last_visit else None
        rows.append(PatientRow(patient, patient.lesion_count, last, flagged))
    return rows


# --- The body map ------------------------------------------------------------------------


def body_map(records: Iterable[LesionRecord]) -> bodymap.BodyMap:
    """The patient's lesions as pins, coloured by each one's latest reading."""
    pins = [bodymap.Pin(str(record.lesion), record.url, record.state, record.point) for record in records]
    return bodymap.body_map(pins)


# --- The lesion page's chart and comparison ---------------------------------------------


def score_chart_svg(record: LesionRecord) -> str:
    """The malignancy score over the lesion's visits, as inline SVG (score_chart escapes every text)."""
    points = [score_point_of(visit.image) for visit in record.visits]
    return score_chart.score_chart_svg(points, title=f"Malignancy score over time: {record.lesion}")


@dataclass(frozen=True)
class Comparison:
    """Two visits side by side: the earlier first. ``pictures`` is what templates/classifier/_compare.html takes."""

    before: VisitRow
    after: VisitRow
    pictures: tuple[dict, ...]


def comparison(record: LesionRecord, a=None, b=None) -> Comparison | None:
    """Visits ``a`` and ``b`` (image ids, as the page's form sends them) of the lesion, by date; None with
    fewer than two pictures. An id that is not one of the lesion's pictures is ignored: the default is the
    last two visits."""
    if len(record.visits) < 2:
        return None
    first, second = record.visit(a), record.visit(b)
    if first is None or second is None or first.image.pk == second.image.pk:
        first, second = record.visits[-2], record.visits[-1]
    before, after = sorted((first, second), key=lambda visit: record.visits.index(visit))
    label = str(record.lesion)
    pictures = tuple(_compared_picture(visit, label) for visit in (before, after))
    return Comparison(before, after, pictures)


def _compared_picture(visit: VisitRow, label: str) -> dict:
    explanation = visit.prediction.explanation if visit.has_reading else None
    return {
        "image_id": visit.image.pk,
        "image_url": reverse("classifier:image-file", args=[visit.image.pk]),
        "width": visit.image.width,
        "height": visit.image.height,
        "taken_at": visit.taken_at,
        "label": label,
        "reading": visit.reading,
        "explanation": explanation if isinstance(explanation, dict) and explanation.get("grid") else None,
    }


# --- What the two pages show --------------------------------------------------------------


@dataclass(frozen=True)
class PatientPage:
    lesions: list[LesionRecord]
    bodymap: bodymap.BodyMap


def patient_page(patient: Patient) -> PatientPage:
    """The patient page's lesions (each with its visits) and its body map: two queries."""
    lesions = patient_lesions(patient)
    return PatientPage(lesions, body_map(lesions))


@dataclass(frozen=True)
class LesionPage:
    record: LesionRecord
    chart: str  # the score chart's SVG
    comparison: Comparison | None


def lesion_page(lesion: Lesion, a=None, b=None) -> LesionPage:
    """The lesion page's timeline, chart and the comparison of visits ``a`` and ``b`` (image ids; see comparison)."""
    record = lesion_record(lesion)
    return LesionPage(record, score_chart_svg(record), comparison(record, a, b))


# --- The PDF reports ---------------------------------------------------------------------


def patient_report_pdf(patient: Patient, by, now: dt.datetime | None = None) -> bytes:
    records = patient_lesions(patient)
    report = _report(patient, by, now, tuple(_section(record) for record in records))
    return pdf_report.patient_report_pdf(report)


def lesion_report_pdf(lesion: Lesion, by, now: dt.datetime | None = None) -> bytes:
    record = lesion_record(lesion)
    return pdf_report.lesion_report_pdf(_report(lesion.patient, by, now), _section(record))


def _report(patient: Patient, by, now: dt.datetime | None, lesions=()) -> pdf_report.Report:
    details = pdf_report.PatientDetails(
        reference=patient.reference,
        year_of_birth=patient.year_of_birth,
        sex=patient.get_sex_display() if patient.sex else "",
        skin_type=patient.skin_type,
        note=patient.note,
    )
    return pdf_report.Report(
        clinic=patient.clinic.name,
        patient=details,
        generated_by=by.get_username(),
        generated_at=local_moment(now or timezone.now()),
        lesions=lesions,
    )


def _section(record: LesionRecord) -> pdf_report.LesionSection:
    lesion = record.lesion
    notes = [lesion.note] if lesion.note else []
    notes += [f"{visit.taken_at:%Y-%m-%d}: {visit.image.clinician_note}" for visit in record.visits
              if visit.image.clinician_note]  # fmt: skip
    return pdf_report.LesionSection(
        label=str(lesion),
        site=lesion.site,
        side=lesion.side,
        status=lesion.get_status_display(),
        position=record.point,
        diagnosis=lesion.get_diagnosis_display() if lesion.diagnosis else "",
        diagnosis_method=lesion.get_diagnosis_method_display() if lesion.diagnosis_method else "",
        timeline=tuple(_entry(visit) for visit in record.visits),
        changes=record.changes,
        notes=tuple(notes),
    )


def _entry(visit: VisitRow) -> pdf_report.TimelineEntry:
    picture = _thumbnail_bytes(visit.image)
    explanation = visit.prediction.explanation if visit.has_reading else None
    heatmap = None
    if picture and isinstance(explanation, dict) and explanation.get("grid"):
        heatmap = heatmap_over(picture, explanation["grid"], explanation.get("box"))
    return pdf_report.TimelineEntry(
        taken_at=visit.taken_at,
        reading=visit.reading,
        malignancy_score=visit.prediction.malignant_probability if visit.has_reading else None,
        flagged=visit.is_suspicious,
        thumbnail=picture,
        heatmap=heatmap,
        model_version=visit.model_version,
    )


def _thumbnail_bytes(image: LesionImage) -> bytes | None:
    """The image's thumbnail (made now if it has none); None when its file is gone: the report says so."""
    try:
        with default_storage.open(thumbnails.ensure_thumbnail(image), "rb") as handle:
            return handle.read()
    except (FileNotFoundError, OSError):
        return None
