"""Reading the audit log: a clinic's events filtered for its managers, and exported as CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet

from classifier.audit import AuditEvent
from classifier.history import csv_safe

CSV_COLUMNS = [
    "at",
    "user",
    "clinic_id",
    "action",
    "action_name",
    "object_type",
    "object_id",
    "object",
    "patient_id",
    "address",
    "detail",
]


def clinic_events(clinic) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.in_clinic(clinic)


def apply_filters(events: QuerySet[AuditEvent], wanted: dict[str, Any]) -> QuerySet[AuditEvent]:
    """Narrow the events by an AuditFilterForm's (or the API's) cleaned data: user, action, dates, patient."""
    if wanted.get("user"):
        events = events.filter(username=wanted["user"])
    if wanted.get("action"):
        events = events.filter(action=wanted["action"])
    if wanted.get("date_from"):
        events = events.filter(at__date__gte=wanted["date_from"])
    if wanted.get("date_to"):
        events = events.filter(at__date__lte=wanted["date_to"])
    if wanted.get("patient_id") is not None:
        events = events.filter(patient_id=wanted["patient_id"])
    return events.order_by("-at", "-id")


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_row(event: AuditEvent) -> list[Any]:
    row = [
        event.at.isoformat(),
        event.username,
        event.clinic_id or "",
        event.action,
        event.get_action_display(),
        event.object_type,
        "" if event.object_id is None else event.object_id,
        event.object_repr,
        "" if event.patient_id is None else event.patient_id,
        event.address or "",
        json.dumps(event.detail, sort_keys=True) if event.detail else "",
    ]
    return [csv_safe(cell) for cell in row]


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    """The events as CSV lines, streamed (a clinic's log can be long)."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(CSV_COLUMNS)
    for event in events:
        yield writer.writerow(csv_row(event))
