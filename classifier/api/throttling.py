from __future__ import annotations

import math

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class UploadRateThrottle(UserRateThrottle):
    """Uploads per user (UPLOAD_RATE_LIMIT, e.g. "300/minute"); over it, 429 with Retry-After."""

    scope = "uploads"

    def get_rate(self) -> str | None:
        # Read at request time (not import time), so the setting can change without a restart of tests.
        return settings.UPLOAD_RATE_LIMIT or None


def page_upload_wait(request) -> int | None:
    """An upload through a page, counted in the same per-user budget (and cache counter) as the API's, so
    the two together never exceed UPLOAD_RATE_LIMIT: None when it may go on, else the seconds to wait."""
    throttle = UploadRateThrottle()
    if throttle.allow_request(request, None):
        return None
    return max(1, math.ceil(throttle.wait() or 1))
