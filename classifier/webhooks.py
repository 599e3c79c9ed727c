"""Webhooks: the URLs a user's programs register to be told when predictions and batches finish,
and the log of every delivery to them.

Events are made by classifier.webhook_events when predictions finish and sent by
classifier.webhook_delivery from the `webhooks` queue; the API is classifier.api.webhooks.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from classifier.clinics import Clinic

# Sent once the transaction that finished them has committed (Prediction._announce_finished),
# with prediction_ids: the predictions just done or failed.
predictions_finished = Signal()


class Event(models.TextChoices):
    PREDICTION_FINISHED = "prediction.finished", "A prediction finished (done or failed)"
    BATCH_FINISHED = "batch.finished", "The last prediction of a multi-file upload finished"


class WebhookEndpoint(models.Model):
    """A URL that is sent the user's events, signed with the endpoint's secret.

    The user is sent events only for predictions of clinics they belong to when the event
    is made and again when it is sent (a clinician who leaves a clinic stops hearing of
    it); ``clinic`` narrows that to one of them.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    clinic = models.ForeignKey(
        Clinic, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Only this clinic's events; empty: those of every clinic the user belongs to.",
    )  # fmt: skip
    url = models.CharField(max_length=500)
    # Stored as it is, not hashed like a password: every delivery computes an HMAC with the key
    # itself, which a one-way hash cannot give back. So it is shown once, in the answer that
    # creates the endpoint, and never again (no serializer but that one, nor the admin, shows it).
    secret = models.CharField(max_length=100, editable=False)
    events = models.JSONField(default=list, help_text="The event types sent: prediction.finished, batch.finished.")
    is_active = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True, help_text="Why deliveries were stopped automatically.")
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Deliveries in a row that failed every attempt; a delivered one resets it."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.url} ({self.user})" + ("" if self.is_active else " [disabled]")

    def receives(self, event_type: str, clinic_id: int) -> bool:
        """Subscribed to this event type, for this clinic (membership is checked by the caller)."""
        return self.is_active and event_type in self.events and self.clinic_id in (None, clinic_id)

    def enable(self) -> None:
        """Deliver again after an automatic disabling; the failure count starts afresh."""
        self.is_active, self.disabled_reason, self.consecutive_failures = True, "", 0
        self.save(update_fields=["is_active", "disabled_reason", "consecutive_failures"])


class WebhookDelivery(models.Model):
    """One event for one endpoint, and how sending it went: pending, delivered, or given up."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (no more attempts)"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # The clinic whose prediction or batch the event is about: membership is checked again before sending.
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=32, choices=Event.choices)
    event_id = models.UUIDField(db_index=True, help_text="The payload's id: the same for every endpoint.")
    payload = models.JSONField()
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Empty once delivered or given up.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        # The periodic sweep looks up the due ones: a small partial index, whatever the log's length.
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(delivered_at=None, next_attempt_at__isnull=False),
                name="webhook_delivery_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to endpoint {self.endpoint_id} ({self.state})"

    @property
    def state(self) -> str:
        if self.delivered_at is not None:
            return self.State.DELIVERED
        return self.State.PENDING if self.next_attempt_at is not None else self.State.FAILED
