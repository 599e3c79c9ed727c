"""Response headers every answer of the site carries (static files aside: WhiteNoise serves them first)."""

from __future__ import annotations

from django.conf import settings


class PrivateResponsesMiddleware:
    """`Cache-Control: private, no-store` and the Content-Security-Policy, unless the view set its own.

    no-store on every answer Django makes, not only the ones known to carry patient data: which
    those are changes with every page added, and a forgotten one would leave a patient's record
    in a shared workstation's cache (or back-forward cache) after logout; the rest are cheap.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = "private, no-store"
        if settings.CONTENT_SECURITY_POLICY and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
        return response
