"""Where an unfinished sign-in stops: pages, the API's session authentication and the admin.

A session whose user has enrolled but has not given a code in it (``two_factor.session_refusal``),
or whose user must enrol and has not, reaches only the sign-in pages, the code step and the
enrolment page; every other page sends it there, and the API refuses it (403). Token clients are
not sessions: their token was issued after a code (``two_factor.token_refusal``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin import AdminSite
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied

from classifier import two_factor

# What an unfinished sign-in may still open: signing in (as someone else, too) and out, the code
# step, enrolment and the set-a-password links.
OPEN_URL_NAMES = frozenset(
    {"login", "logout", "admin:login", "admin:logout", "two-factor-code", "two-factor",
     "password_reset_confirm", "password_reset_complete"}
)  # fmt: skip


class TwoFactorMiddleware:
    """Sends an unfinished sign-in to the code step (enrolled users) or to enrolment (users who must enrol)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        name = f"{match.namespace}:{match.url_name}" if match and match.namespace else (match and match.url_name)
        if name in OPEN_URL_NAMES or request.path.startswith(("/api/", settings.STATIC_URL)):
            return None  # the API answers for itself (VerifiedSessionAuthentication), with JSON
        if not request.user.is_authenticated or two_factor.is_verified(request):
            return None
        if two_factor.is_enrolled(request.user):
            return redirect(f"{reverse('two-factor-code')}?{urlencode({'next': request.get_full_path()})}")
        if two_factor.is_required(request.user):
            return redirect("two-factor")
        return None


class VerifiedSessionAuthentication(SessionAuthentication):
    """DRF's session authentication, refusing a session that has not finished two-factor sign-in."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            refusal = two_factor.session_refusal(request._request)
            if refusal:
                raise PermissionDenied(refusal)
        return result


class VerifiedSessionScheme(SessionScheme):
    """The API schema names it as the session cookie it is (drf-spectacular matches classes exactly)."""

    target_class = "classifier.two_factor_gate.VerifiedSessionAuthentication"


class VerifiedAdminSite(AdminSite):
    """The admin for staff whose session gave a code (django_otp's OTPAdminSite rule, with Django's own login).

    The login is the usual one; the code step that follows it is the site's (TwoFactorMiddleware),
    so the admin and the pages sign in the same way.
    """

    def has_permission(self, request):
        return super().has_permission(request) and two_factor.is_verified(request)
