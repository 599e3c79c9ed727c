"""Query parameters of the images and predictions lists: the history page's filters, and strict.

A parameter the list does not know, or a value it cannot read, answers 400 naming
the parameter: a misspelt filter must not return the unfiltered list as if it had
been applied.
"""

from __future__ import annotations

import datetime
import difflib

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field

from classifier.access import CLINIC_PARAMETER
from classifier.audit import Action, AuditEvent
from classifier.history import has_reading, sort_orders
from classifier.models import CLASS_CHOICES, LesionImage, Patient, Prediction

# Query parameters that are not filters: the page number and size, DRF's ?format=, and the
# clinic the request works in (classifier.access).
NOT_FILTERS = frozenset({"page", "page_size", "format", CLINIC_PARAMETER})
# The largest id a BigAutoField holds: a larger one cannot exist, and SQLite cannot even compare with it.
MAX_ID = 2**63 - 1


class StrictForm(forms.Form):
    """The filters' form: a query parameter that is none of its fields is an error, named."""

    def clean(self):
        cleaned = super().clean()
        known = sorted([*self.fields, *NOT_FILTERS])
        for name in sorted(set(self.data) - set(known)):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            message = f"Unknown query parameter.{hint} Known: {', '.join(known)}."
            # Keyed by the parameter itself, as the errors of known filters are;
            # add_error() only accepts the form's own fields.
            self._errors[name] = self.error_class([ValidationError(message, code="unknown_parameter")])
        return cleaned


class StrictBooleanField(forms.Field):
    """true or false (or 1 or 0); anything else is an error, not "no filter"."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValidationError("Enter true or false.", code="invalid")


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class IdFilter(django_filters.Filter):
    """An object's id: a whole number a row can have, so that no number overflows the database."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class DateOrDateTimeField(forms.Field):
    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip()
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            pass
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                "Enter a date (2025-01-31) or a date and time (2025-01-31T14:30:00Z).", code="invalid"
            ) from None
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class CreatedFilter(django_filters.Filter):
    """created_at from or up to a moment; a bare date counts whole days, as the history page's dates do."""

    field_class = DateOrDateTimeField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        schema = {"oneOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
        extend_schema_field({**schema, "description": self.extra.get("help_text", "")})(self)

    def filter(self, queryset, value):
        if value is None:
            return queryset
        if isinstance(value, datetime.datetime):
            return queryset.filter(**{f"{self.field_name}__{self.lookup_expr}": value})
        # The day in the site's TIME_ZONE, like the history page's From and To.
        return queryset.filter(**{f"{self.field_name}__date__{self.lookup_expr}": value})


class ReadingFilter(django_filters.FilterSet):
    """The filters both lists share. A subclass says where the reading's fields are."""

    reading = ""  # the prefix of the reading's fields (history.sort_orders)
    search_fields: tuple[str, ...] = ()
    orders = sort_orders("")

    status = django_filters.ChoiceFilter(
        choices=Prediction.Status.choices,
        method="filter_field",
        help_text="The prediction's status (an image's: its latest prediction's).",
    )
    top_class = django_filters.ChoiceFilter(
        choices=CLASS_CHOICES,
        method="filter_reading",
        help_text="The predicted class. An out-of-distribution prediction has no reading and matches no class.",
    )
    is_malignant = BooleanFilter(
        method="filter_reading",
        help_text="The malignancy flag: `true` flagged, `false` read and not flagged. Neither matches a prediction "
        "that is not finished, or an out-of-distribution one (it has no reading).",
    )
    is_out_of_distribution = BooleanFilter(
        method="filter_field",
        help_text="`true`: the picture did not look like a dermatoscopic image; `false`: it was checked and did. "
        "Neither matches a prediction not finished, or made by a version without the check.",
    )
    created_after = CreatedFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="Created at or after a date-time (ISO 8601), or on or after a date (in the site's time zone).",
    )
    created_before = CreatedFilter(
        field_name="created_at",
        lookup_expr="lte",
        help_text="Created at or before a date-time (ISO 8601), or on or before a date (in the site's time zone).",
    )
    search = django_filters.CharFilter(
        method="filter_search", max_length=200, help_text="Text in the image's file name or in the note on it."
    )
    ordering = django_filters.ChoiceFilter(
        choices=[(key, label) for key, (label, _) in orders.items()],
        method="filter_ordering",
        help_text="The order of the list; the default is newest first.",
    )

    class Meta:
        form = StrictForm
        fields: list[str] = []

    def filter_field(self, queryset, name, value):
        return queryset.filter(**{f"{self.reading}{name}": value})

    def filter_reading(self, queryset, name, value):
        return queryset.filter(has_reading(self.reading), **{f"{self.reading}{name}": value})

    def filter_search(self, queryset, name, value):
        matches = Q()
        for field in self.search_fields:
            matches |= Q(**{f"{field}__icontains": value})
        return queryset.filter(matches)

    def filter_ordering(self, queryset, name, value):
        _, ordering = self.orders[value]
        return queryset.order_by(*ordering)


class ImageFilter(ReadingFilter):
    """An image's status, class and flags are its latest prediction's (history.annotate_latest_prediction)."""

    reading = "prediction_"
    search_fields = ("original_filename", "clinician_note")
    orders = sort_orders(reading)

    batch = IdFilter(field_name="batch_entries__batch", help_text="The images of the files sent in this batch.")
    patient = IdFilter(field_name="lesion__patient", help_text="The images of this patient's lesions.")
    lesion = IdFilter(field_name="lesion", help_text="The images of this lesion.")

    class Meta(ReadingFilter.Meta):
        model = LesionImage


class PredictionFilter(ReadingFilter):
    search_fields = ("image__original_filename", "image__clinician_note")

    batch = IdFilter(
        field_name="batch_entries__batch", help_text="The predictions a batch shows for the files sent in it."
    )
    image = IdFilter(field_name="image", help_text="Predictions of this image.")

    class Meta(ReadingFilter.Meta):
        model = Prediction


class PatientFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        method="filter_search", max_length=64, help_text="Text in the patient's reference (any case)."
    )

    class Meta:
        model = Patient
        form = StrictForm
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        return queryset.search(value)


class AuditEventFilter(django_filters.FilterSet):
    user = django_filters.CharFilter(field_name="username", max_length=150, help_text="The username.")
    action = django_filters.ChoiceFilter(choices=Action.choices, help_text="What was done.")
    patient = IdFilter(field_name="patient_id", help_text="Events about this patient (kept after an erasure).")
    after = CreatedFilter(
        field_name="at", lookup_expr="gte", help_text="At or after a date-time (ISO 8601), or on or after a date."
    )
    before = CreatedFilter(
        field_name="at", lookup_expr="lte", help_text="At or before a date-time (ISO 8601), or on or before a date."
    )

    class Meta:
        model = AuditEvent
        form = StrictForm
        fields: list[str] = []
