"""Signing in with a second factor in tests: a phone for a user, its codes, and a verified session."""

from __future__ import annotations

import time

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


def enrolled_phone(user) -> TOTPDevice:
    """The user's confirmed authenticator app (made if they have none), as enrolment leaves it."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def code_for(device: TOTPDevice) -> str:
    """The code the app shows now, computed from the device's secret; or, if this step's code was
    used already (django-otp takes each step's code once), the next step's, which the tolerance accepts."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    totp.time += max(0, device.last_t + 1 - totp.t()) * device.step
    return f"{totp.token():0{device.digits}d}"


def verify_session(client, user) -> None:
    """Mark ``client``'s session as having given a code, as the code step does (django_otp.login)."""
    device = enrolled_phone(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def verified_login(client, user):
    """``force_login`` for staff and clinic managers (who must use two-factor sign-in): the session gave its code."""
    client.force_login(user)
    verify_session(client, user)
    return client
