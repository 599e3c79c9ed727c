"""A clinic's patients and their lesions: what a lesion's pictures are followed by.

A patient is known by the reference the clinic chooses (its record number, say): no
name is needed, and none should be stored. A lesion sits at a body site, and may carry
the confirmed diagnosis: recorded here and copied to each of its images, so that
retraining sees every picture of a confirmed lesion (LesionImage's label fields are
the lesion's while it has one).
"""

from __future__ import annotations

import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import Count, Q
from django.utils import timezone

from classifier.vocabulary import (
    CLASS_CHOICES,
    METHOD_CHOICES,
    SEX_CHOICES,
    SITE_CHOICES,
    Side,
    SkinType,
    validate_label,
)

REFERENCE_MAX_LENGTH = 64
NOTE_MAX_LENGTH = 2000
# Older birth years are typos: nobody alive was born before.
EARLIEST_YEAR_OF_BIRTH = 1900


def clean_reference(value: str) -> str:
    """A patient reference as stored: trimmed, 1-64 characters, on one line. Raises ValidationError."""
    reference = (value or "").strip()
    if not reference:
        raise ValidationError("Give the patient a reference (e.g. their record number).", code="blank")
    if len(reference) > REFERENCE_MAX_LENGTH:
        raise ValidationError(
            f"The reference has {len(reference)} characters; the limit is {REFERENCE_MAX_LENGTH}.", code="max_length"
        )
    if any(unicodedata.category(ch)[0] == "C" for ch in reference):
        raise ValidationError("The reference must be one line of text, without control characters.", code="invalid")
    return reference


def validate_year_of_birth(year: int) -> None:
    this_year = timezone.localdate().year
    if year > this_year:
        raise ValidationError(f"{year} is in the future (it is {this_year}).", code="future")
    if year < EARLIEST_YEAR_OF_BIRTH:
        raise ValidationError(f"{year} is before {EARLIEST_YEAR_OF_BIRTH}: check the year.", code="too_early")


class PatientQuerySet(models.QuerySet):
    def in_clinic(self, clinic) -> PatientQuerySet:
        """The clinic's patients; nobody's without a clinic."""
        return self.none() if clinic is None else self.filter(clinic=clinic)

    def search(self, text: str) -> PatientQuerySet:
        """Patients whose reference contains the text (any case)."""
        text = (text or "").strip()
        return self.filter(reference__icontains=text) if text else self

    def with_lesion_counts(self) -> PatientQuerySet:
        return self.annotate(lesion_count=Count("lesions", distinct=True))


class Patient(models.Model):
    """A person a clinic follows, known by the clinic's own reference; no name is stored."""

    clinic = models.ForeignKey("classifier.Clinic", on_delete=models.PROTECT, related_name="patients")
    reference = models.CharField(
        max_length=REFERENCE_MAX_LENGTH,
        help_text="The clinic's own reference for the patient (e.g. the record number), unique in the clinic.",
    )
    year_of_birth = models.PositiveSmallIntegerField(null=True, blank=True, validators=[validate_year_of_birth])
    sex = models.CharField(max_length=8, choices=SEX_CHOICES, blank=True)
    skin_type = models.CharField(
        max_length=3, choices=SkinType.choices, blank=True, help_text="Fitzpatrick skin type, I to VI."
    )
    note = models.TextField(blank=True, max_length=NOTE_MAX_LENGTH)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["reference", "id"]
        constraints = [models.UniqueConstraint(fields=["clinic", "reference"], name="one_reference_per_clinic")]

    def __str__(self) -> str:
        return self.reference

    def save(self, *args, **kwargs):
        # Stored trimmed whatever the caller passed, so " A12" and "A12" are one reference.
        self.reference = (self.reference or "").strip()
        super().save(*args, **kwargs)

    @property
    def audit_subject(self) -> tuple[str, int, int | None, int | None]:
        return ("patient", self.pk, self.pk, self.clinic_id)


class LesionQuerySet(models.QuerySet):
    def in_clinic(self, clinic) -> LesionQuerySet:
        """The lesions of the clinic's patients; none without a clinic."""
        return self.none() if clinic is None else self.filter(patient__clinic=clinic)

    def in_clinics_of(self, user) -> LesionQuerySet:
        """The lesions of every clinic the user belongs to (where an image may be attached)."""
        return self.filter(patient__clinic__memberships__user=user)


class Lesion(models.Model):
    """One lesion of a patient, at a body site, photographed at visits."""

    class Status(models.TextChoices):
        MONITORED = "monitored", "Monitored"
        EXCISED = "excised", "Excised"
        RESOLVED = "resolved", "Resolved"

    class View(models.TextChoices):
        FRONT = "front", "Front"
        BACK = "back", "Back"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="lesions")
    label = models.CharField(max_length=64, blank=True, help_text='A short name, e.g. "L3, left scapula".')
    site = models.CharField(max_length=32, choices=SITE_CHOICES, help_text="HAM10000's localization vocabulary.")
    side = models.CharField(max_length=8, choices=Side.choices, blank=True)
    # Where the lesion sits on the body map: a view and a point in it, 0..1 from its top left.
    map_view = models.CharField(max_length=5, choices=View.choices, blank=True)
    map_x = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    map_y = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.MONITORED)
    note = models.TextField(blank=True, max_length=NOTE_MAX_LENGTH)
    # The confirmed diagnosis (same vocabularies as an image's label), copied to every image of the lesion.
    diagnosis = models.CharField(max_length=8, choices=CLASS_CHOICES, blank=True)
    diagnosis_method = models.CharField(max_length=16, choices=METHOD_CHOICES, blank=True)
    diagnosis_note = models.TextField(blank=True)
    labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labelled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = LesionQuerySet.as_manager()

    class Meta:
        ordering = ["patient", "created_at", "id"]
        constraints = [
            # A position is a view and a point inside it, or nothing at all. The isnull terms are
            # needed: a CHECK whose value is NULL (a comparison with a missing x) passes.
            models.CheckConstraint(
                condition=Q(map_view="", map_x__isnull=True, map_y__isnull=True)
                | (
                    ~Q(map_view="")
                    & Q(map_x__isnull=False, map_y__isnull=False)
                    & Q(map_x__gte=0.0, map_x__lte=1.0, map_y__gte=0.0, map_y__lte=1.0)
                ),
                name="lesion_map_position_complete_and_inside",
            )
        ]

    def __str__(self) -> str:
        return self.label or f"Lesion {self.pk} ({self.get_site_display().lower()})"

    @property
    def audit_subject(self) -> tuple[str, int, int | None, int | None]:
        clinic_id = self.patient.clinic_id if "patient" in self._state.fields_cache else None
        return ("lesion", self.pk, self.patient_id, clinic_id)

    @property
    def label_fields(self) -> dict:
        """The label as an image of this lesion carries it."""
        return {
            "diagnosis": self.diagnosis,
            "diagnosis_method": self.diagnosis_method,
            "diagnosis_note": self.diagnosis_note,
            "labelled_by_id": self.labelled_by_id,
            "labelled_at": self.labelled_at,
        }

    def clean(self) -> None:
        placed = [self.map_view != "", self.map_x is not None, self.map_y is not None]
        if any(placed) and not all(placed):
            raise ValidationError("A body-map position needs its view (front or back) and both x and y.")

    def set_label(self, diagnosis: str, method: str, note: str, by) -> int:
        """Record the confirmed diagnosis on the lesion and on every image of it; returns how many images."""
        validate_label(diagnosis, method)
        with transaction.atomic():
            self.diagnosis, self.diagnosis_method, self.diagnosis_note = diagnosis, method, note
            self.labelled_by, self.labelled_at = by, timezone.now()
            self.save(update_fields=["diagnosis", "diagnosis_method", "diagnosis_note", "labelled_by", "labelled_at"])
            return self.images.update(**self.label_fields)

    def remove_label(self) -> int:
        """Take a wrong confirmed diagnosis off the lesion and all its images; returns how many images."""
        with transaction.atomic():
            self.diagnosis = self.diagnosis_method = self.diagnosis_note = ""
            self.labelled_by, self.labelled_at = None, None
            self.save(update_fields=["diagnosis", "diagnosis_method", "diagnosis_note", "labelled_by", "labelled_at"])
            return self.images.update(**self.label_fields)

    def timeline(self):
        """The lesion's images by the date they were taken, oldest first, each with its latest reading."""
        return self.images.select_related("latest_prediction__model_version").order_by("taken_at", "id")
