"""The audit log: who read or changed which patient's records, when, from where.

Append-only. ``audit(request, action, obj)`` writes one row with one INSERT, from pages
and the API alike; nothing in the app updates or deletes a row (the ORM refuses), except
the retention purge (``manage.py purge_audit_events``, AUDIT_RETENTION_DAYS). An event
names its object by type and id and a short text that holds no patient data ("image
#12"), so it still says what happened after the patient was erased.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.utils import timezone

from classifier.access import resolved_clinic_id


class AuditLogIsAppendOnly(Exception):
    """Audit events are never changed or deleted through the app."""

    def __init__(self, what: str = "changed or deleted"):
        super().__init__(f"Audit events are append-only: they cannot be {what}.")


class Action(models.TextChoices):
    VIEWED_PATIENT = "viewed_patient", "Viewed a patient"
    LISTED_PATIENTS = "listed_patients", "Listed or searched patients"
    VIEWED_LESION = "viewed_lesion", "Viewed a lesion"
    VIEWED_IMAGE = "viewed_image", "Viewed an image and its reading"
    VIEWED_BATCH = "viewed_batch", "Viewed a batch"
    VIEWED_HISTORY = "viewed_history", "Viewed the history"
    DOWNLOADED_FILE = "downloaded_file", "Downloaded a file"
    EXPORTED_CSV = "exported_csv", "Exported the history as CSV"
    EXPORTED_PDF = "exported_pdf", "Exported a PDF report"
    EXPORTED_RECORD = "exported_record", "Exported a patient's record"
    UPLOADED = "uploaded", "Uploaded an image"
    CREATED_PATIENT = "created_patient", "Created a patient"
    CHANGED_PATIENT = "changed_patient", "Changed a patient"
    CREATED_LESION = "created_lesion", "Created a lesion"
    CHANGED_LESION = "changed_lesion", "Changed a lesion"
    ATTACHED_IMAGE = "attached_image", "Attached an image to a lesion"
    CHANGED_NOTE = "changed_note", "Changed an image's note"
    LABELLED = "labelled", "Labelled with a confirmed diagnosis"
    ERASED = "erased", "Erased a patient"
    CHANGED_MEMBERSHIP = "changed_membership", "Changed the clinic's members"
    SWITCHED_CLINIC = "switched_clinic", "Switched clinic"
    VIEWED_AUDIT_LOG = "viewed_audit_log", "Viewed the audit log"
    EXPORTED_AUDIT_LOG = "exported_audit_log", "Exported the audit log"
    ENABLED_TWO_FACTOR = "enabled_two_factor", "Turned on two-factor sign-in"
    DISABLED_TWO_FACTOR = "disabled_two_factor", "Turned off two-factor sign-in"
    NEW_RECOVERY_CODES = "new_recovery_codes", "Made new two-factor recovery codes"
    USED_RECOVERY_CODE = "used_recovery_code", "Signed in with a recovery code"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditLogIsAppendOnly("updated")

    def delete(self):
        raise AuditLogIsAppendOnly("deleted")

    def in_clinic(self, clinic) -> AuditEventQuerySet:
        return self.none() if clinic is None else self.filter(clinic=clinic)

    def older_than(self, days: int) -> AuditEventQuerySet:
        return self.filter(at__lt=timezone.now() - timedelta(days=days))

    def purge_older_than(self, days: int) -> int:
        """Delete the events older than ``days`` (the retention period); returns how many.

        The one deletion the log allows, so it goes around this queryset's refusal.
        """
        expired = self.model._base_manager.filter(at__lt=timezone.now() - timedelta(days=days))
        deleted, _ = models.QuerySet.delete(expired)
        return deleted


class AuditEvent(models.Model):
    """One read or change of a clinic's records; never changed once written."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True, help_text="Kept if the user is deleted.")
    clinic = models.ForeignKey("classifier.Clinic", null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=24, choices=Action.choices)
    object_type = models.CharField(max_length=16, blank=True, help_text="patient, lesion, image, batch, ...")
    object_id = models.BigIntegerField(null=True, blank=True)
    object_repr = models.CharField(max_length=100, blank=True, help_text='Holds no patient data: "image #12".')
    # The patient the object belongs to, as a plain number: kept after the patient is erased.
    patient_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    address = models.GenericIPAddressField(null=True, blank=True, help_text="The client's address.")
    detail = models.JSONField(default=dict, blank=True, help_text="A few words more; never patient data.")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["clinic", "-at"], name="audit_clinic_newest")]

    def __str__(self) -> str:
        who = self.username or "someone"
        return f"{self.at:%Y-%m-%d %H:%M} {who}: {self.get_action_display().lower()} {self.object_repr}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditLogIsAppendOnly("changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditLogIsAppendOnly("deleted")


def client_address(request) -> str | None:
    """The client's IP address: REMOTE_ADDR, or, behind a proxy trusted by TRUST_X_FORWARDED_FOR,
    the last address in X-Forwarded-For (the one that proxy saw; earlier ones the client may forge)."""
    candidates = []
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        candidates.append(forwarded.split(",")[-1].strip())
    candidates.append(request.META.get("REMOTE_ADDR", ""))
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def _event(request, action: str, obj, clinic, detail: dict | None) -> AuditEvent:
    object_type, object_id, patient_id, clinic_id = obj.audit_subject if obj is not None else ("", None, None, None)
    if clinic is not None:
        clinic_id = clinic.pk
    elif clinic_id is None:
        clinic_id = resolved_clinic_id(request)
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return AuditEvent(
        user_id=user.pk if signed_in else None,
        username=user.get_username() if signed_in else "",
        clinic_id=clinic_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=f"{object_type} #{object_id}" if object_id is not None else "",
        patient_id=patient_id,
        address=client_address(request),
        detail=detail or {},
    )


def audit(request, action: str, obj=None, *, clinic=None, detail: dict | None = None) -> AuditEvent:
    """Record that the request's user did ``action`` to ``obj`` (a model with ``audit_subject``): one INSERT.

    The event's clinic is the object's, else ``clinic``, else the request's current clinic.
    ``detail`` must hold no patient data (no references, file names or notes).
    """
    event = _event(request, action, obj, clinic, detail)
    if action in REPEATABLE_VIEWS and not _first_view_in_window(event):
        return event  # the same person saw the same thing moments ago: the log has it
    event.save(force_insert=True)
    return event


# A page that follows a pending reading re-reads it every second or two, and an API client polls
# the same way; each read is the same access. Views (never downloads, exports or changes) of the
# same object by the same user from the same address are written once per AUDIT_REPEAT_SECONDS.
REPEATABLE_VIEWS = frozenset(
    {Action.VIEWED_PATIENT, Action.VIEWED_LESION, Action.VIEWED_IMAGE, Action.VIEWED_BATCH, Action.LISTED_PATIENTS}
)


def _first_view_in_window(event: AuditEvent) -> bool:
    if settings.AUDIT_REPEAT_SECONDS <= 0:
        return True
    key = ":".join(
        str(part)
        for part in (
            "audit-seen",
            event.user_id,
            event.clinic_id,
            event.action,
            event.object_type,
            event.object_id,
            event.address,
        )  # fmt: skip
    )
    return cache.add(key, 1, timeout=settings.AUDIT_REPEAT_SECONDS)


def audit_many(request, action: str, objects: Iterable, *, clinic=None, detail: dict | None = None) -> int:
    """``audit`` for many objects at once (a bulk label), still one INSERT."""
    events = [_event(request, action, obj, clinic, detail) for obj in objects]
    AuditEvent.objects.bulk_create(events)
    return len(events)
