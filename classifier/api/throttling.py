from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class UploadRateThrottle(UserRateThrottle):
    """Uploads per user (UPLOAD_RATE_LIMIT, e.g. "300/minute"); over it, 429 with Retry-After."""

    scope = "uploads"

    def get_rate(self) -> str | None:
        # Read at request time (not import time), so the setting can change without a restart of tests.
        return settings.UPLOAD_RATE_LIMIT or None
