"""Two-factor sign-in: who must have it, enrolling a phone, recovery codes, and checking a code.

On django-otp: an authenticator app's TOTP device (one per user, ``confirmed`` once the user
typed a code from it) and a static device holding the one-time recovery codes. A session is
*verified* once a code was given in it (``django_otp.login``; ``request.user.is_verified()``
under django_otp's OTPMiddleware). ``classifier.two_factor_gate`` keeps unverified sessions
of enrolled users, and users who must enrol but have not, out of every other page and of the
API; ``classifier.two_factor_pages`` is the code step and the enrolment page.

A wrong code is counted twice over: as a failed sign-in by django-axes (the same lock, message
and log as wrong passwords, per account and per address), and by django-otp's own throttle on
the device (each failure doubles the wait before the next try). The throttle is what holds when
someone who knows the password signs in again between guesses: axes forgets an account's
failures on every successful password step (AXES_RESET_ON_SUCCESS), the device never does
until a right code.
"""

from __future__ import annotations

import math
from base64 import b32encode
from dataclasses import dataclass

import django_otp
import segno
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework import status
from rest_framework.response import Response

from classifier.clinics import Membership
from classifier.lockout import lockout_response

RECOVERY_CODE_COUNT = 10  # one a month for most of a year without the phone, few enough to print
TOTP_CODE_LENGTH = 6  # what authenticator apps show; recovery codes are 8 letters and digits
PHONE = "Authenticator app"
RECOVERY = "Recovery codes"


def is_required(user) -> bool:
    """Staff and clinic managers must sign in with a second factor; clinicians when the setting says so."""
    if not user.is_authenticated:
        return False
    if user.is_staff or settings.TWO_FACTOR_REQUIRED_FOR_CLINICIANS:
        return True
    return Membership.objects.managers().filter(user=user).exists()


def is_enrolled(user) -> bool:
    return user.is_authenticated and TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def is_verified(request) -> bool:
    """Whether a code was given in this session (always False without django_otp's middleware)."""
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and getattr(user, "is_verified", lambda: False)())


def session_refusal(request) -> str | None:
    """Why this signed-in session may not be used yet, or None: the one rule pages and the API share."""
    user = request.user
    if not user.is_authenticated or is_verified(request):
        return None
    if is_enrolled(user):
        return "This session has not given its two-factor code yet: finish signing in first."
    if is_required(user):
        return "Your account must use two-factor sign-in: set it up at /account/two-factor/ first."
    return None


# --- Enrolling.


def pending_device(user) -> TOTPDevice:
    """The authenticator app being set up: the same secret until it is confirmed, so a reload keeps the QR code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=PHONE, confirmed=False)


def secret_text(device: TOTPDevice) -> str:
    """The secret as an app asks for it when typed in (base32), in groups of four."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// link as an inline SVG element: no image file, no script (the CSP allows neither inline)."""
    # White behind the modules and a quiet zone of four: what phone cameras need on a dark page too.
    qr = segno.make(device.config_url, error="m")
    # A viewBox instead of a fixed size, so the stylesheet can shrink it on a narrow screen.
    return qr.svg_inline(scale=5, border=4, light="#fff", title="QR code for your authenticator app", omitsize=True)


def confirm(request, device: TOTPDevice, code: str) -> list[str] | None:
    """Turn two-factor sign-in on if ``code`` is the app's current one; returns the new recovery codes.

    The session counts as verified from then on: the user just proved they hold the phone.
    """
    if not device.verify_token(_digits(code)):
        return None
    with transaction.atomic():
        TOTPDevice.objects.filter(user=device.user, confirmed=True).delete()  # one phone per account
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = new_recovery_codes(device.user)
    django_otp.login(request, device)
    return codes


def new_recovery_codes(user) -> list[str]:
    """Ten fresh one-time codes; the earlier ones stop working. Shown once: only the user keeps them."""
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY, defaults={"confirmed": True})
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def turn_off(user) -> None:
    """Forget the phone and the recovery codes. Staff and managers are sent to enrol again at once."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()


# --- Checking a code at sign-in (and before turning it off).


@dataclass(frozen=True)
class CodeCheck:
    device: TOTPDevice | StaticDevice | None  # the device that took the code; None when refused
    error: str = ""
    locked_out: bool = False  # django-axes locked the account or address: answer with classifier.lockout


def check_code(request, user, code: str) -> CodeCheck:
    """Whether ``code`` is the user's current app code or an unused recovery code (which it uses up).

    A wrong code is a failed sign-in for django-axes and a failure on the device's throttle.
    ``request`` is the one axes counts against (a DRF request is fine: axes reads its address).
    """
    credentials = {settings.AXES_USERNAME_FORM_FIELD: user.get_username()}
    if AxesProxyHandler.is_locked(request, credentials):
        return CodeCheck(None, locked_out=True)
    code = "".join(code.split()).lower()
    if not code:
        return CodeCheck(None, "Enter the 6-digit code from your authenticator app, or one of your recovery codes.")
    recovery = not (code.isdigit() and len(code) == TOTP_CODE_LENGTH)
    with transaction.atomic():
        model = StaticDevice if recovery else TOTPDevice
        device = model.objects.select_for_update().filter(user=user, confirmed=True).first()
        if device is None:
            return _failed(request, credentials, "That is not a code from your authenticator app (6 digits).")
        allowed, why = device.verify_is_allowed()
        if not allowed:
            return CodeCheck(None, _throttled_message(why))
        if device.verify_token(code):
            return CodeCheck(device)
    return _failed(
        request,
        credentials,
        "That recovery code is wrong or was used already."
        if recovery
        else "That code is wrong or has expired: enter the one your app shows now.",
    )


def _failed(request, credentials: dict, message: str) -> CodeCheck:
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)
    return CodeCheck(None, message, locked_out=bool(getattr(request, "axes_locked_out", False)))


def _throttled_message(why: dict | None) -> str:
    until = (why or {}).get("locked_until")
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds())) if until else 1
    return f"Too many wrong codes in a row: wait {seconds} second{'s' if seconds != 1 else ''} and try again."


def _digits(code: str) -> str:
    return "".join(code.split())


# --- The token API (POST /api/v1/auth/token/, classifier.api.auth).

OTP_FIELD = "otp"


def token_refusal(request, user) -> Response | None:
    """None if ``user`` (whose password was right) may be given a token now, else the answer to give.

    An enrolled user sends a current code (or a recovery code) as ``otp``; a user who must use
    two-factor sign-in and has not set it up gets no token until they have, on the page.
    """
    if not is_enrolled(user):
        if is_required(user):
            return Response(
                {OTP_FIELD: ["Your account must use two-factor sign-in: set it up at /account/two-factor/ first."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return None
    code = request.data.get(OTP_FIELD)
    if isinstance(code, int) and not isinstance(code, bool):
        code = f"{code:0{TOTP_CODE_LENGTH}d}"  # a JSON number: its leading zeros were lost
    if not isinstance(code, str) or not code.strip():
        return Response(
            {
                OTP_FIELD: [
                    "This account uses two-factor sign-in: send the code from your authenticator app "
                    "(or a recovery code) as otp."
                ]
            },  # fmt: skip
            status=status.HTTP_400_BAD_REQUEST,
        )
    checked = check_code(request, user, code)
    if checked.locked_out:
        return lockout_response(request)
    if checked.device is None:
        return Response({OTP_FIELD: [checked.error]}, status=status.HTTP_400_BAD_REQUEST)
    return None
