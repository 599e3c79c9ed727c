"""Idempotency-Key on uploads: a client that retries a request (a timeout, a dropped
connection) gets the first answer again, and nothing is created twice.

As Stripe's API does: the first request with a key claims it (a row committed before the
work starts), does the work, and stores its answer on the row. A retry with the same key
and the same request replays that answer; the same key with a different request is
refused (422), and a retry while the first is still being processed gets 409, so two
copies of one request can never both run. A request that was refused (4xx) or failed
releases its key: it created nothing, and sending it again gets the same refusal.
Keys are per user and expire after ``IDEMPOTENCY_KEY_HOURS`` (the sweep deletes them).
"""

from __future__ import annotations

import datetime
import hashlib

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


class KeyInUse(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_key_in_use"
    default_detail = f"A request with this {HEADER} is still being processed. Retry in a few seconds to get its answer."


class KeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = (
        f"This {HEADER} was used for a different request (other files or fields). Use a new key for a new request."
    )


class IdempotencyRecordQuerySet(models.QuerySet):
    def expired(self, now: datetime.datetime | None = None) -> IdempotencyRecordQuerySet:
        hours = datetime.timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
        return self.filter(created_at__lt=(now or timezone.now()) - hours)


class IdempotencyRecord(models.Model):
    """One user's Idempotency-Key: the request it was first sent with and, once answered, the answer."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=MAX_KEY_LENGTH)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request's fields and files.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Null while in progress.")
    body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = IdempotencyRecordQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_record_per_user_and_key")]

    def __str__(self) -> str:
        return f"{self.key} of {self.user}"


def key_of(request) -> str | None:
    """The request's Idempotency-Key, None without one; a malformed key is a 400 naming the header."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not all(" " < char < "\x7f" for char in key):
        raise ValidationError(
            {HEADER: [f"Must be 1-{MAX_KEY_LENGTH} visible ASCII characters (a UUID is a good choice)."]}
        )
    return key


def fingerprint(fields: dict, files) -> str:
    """SHA-256 over the request's fields and every file's name and bytes, in order."""
    digest = hashlib.sha256()
    for name in sorted(fields):
        digest.update(f"{name}={fields[name]!s}\n".encode())
    for uploaded in files:
        digest.update(f"file:{uploaded.name}\n".encode())
        for chunk in uploaded.chunks():
            digest.update(chunk)
        uploaded.seek(0)
    return digest.hexdigest()


def claim(user, key: str, request_fingerprint: str) -> Response | None:
    """Claim ``key`` for this request, or return the answer it already got.

    Raises KeyInUse while the first request with the key is still running and KeyReused for a
    different request under the same key."""
    IdempotencyRecord.objects.filter(user=user, key=key).expired().delete()
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(user=user, key=key, fingerprint=request_fingerprint)
        return None
    except IntegrityError:
        pass
    record = IdempotencyRecord.objects.filter(user=user, key=key).first()
    if record is None:  # the first request was refused and released the key just now
        return claim(user, key, request_fingerprint)
    if record.fingerprint != request_fingerprint:
        raise KeyReused()
    if record.status_code is None:
        raise KeyInUse()
    return Response(record.body, status=record.status_code, headers={REPLAYED_HEADER: "true"})


def answer(user, key: str, response: Response) -> Response:
    """Store a successful answer for replay; release the key after any other."""
    records = IdempotencyRecord.objects.filter(user=user, key=key)
    if status.is_success(response.status_code):
        records.update(status_code=response.status_code, body=response.data)
    else:
        records.delete()
    return response


def release(user, key: str) -> None:
    """The request failed before it had an answer: let the client try again with the same key."""
    IdempotencyRecord.objects.filter(user=user, key=key, status_code=None).delete()
