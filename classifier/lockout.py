"""What a client is told when django-axes has locked sign-in (settings.AXES_LOCKOUT_CALLABLE).

One message for the three ways in (the login page, the admin's login and POST /api/v1/auth/token/):
a page for browsers, the same words as JSON for the API. Axes counts failures per account and per
client address; a lock lifts AXES_COOLOFF_TIME after the last failed attempt.
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render


def lockout_minutes() -> int:
    return max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def lockout_message() -> str:
    minutes = lockout_minutes()
    duration = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return (
        f"Sign-in is locked for this account or from this address after {settings.AXES_FAILURE_LIMIT} "
        f"failed attempts. Try again in {duration} (counted from the last failed attempt), "
        "or ask an administrator to unlock it."
    )


def lockout_response(request, original_response=None, credentials=None):
    status = settings.AXES_HTTP_RESPONSE_CODE
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": lockout_message(), "locked_minutes": lockout_minutes()},
            status=status,
            headers={"Retry-After": str(lockout_minutes() * 60)},
        )
    response = render(request, "registration/locked_out.html", {"message": lockout_message()}, status=status)
    response["Retry-After"] = str(lockout_minutes() * 60)
    return response
