"""The two-factor pages: the code step after the password, and the page to set it up, renew codes or turn it off."""

from __future__ import annotations

import django_otp
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from django_otp.plugins.otp_static.models import StaticDevice

from classifier import two_factor
from classifier.access import current_clinic
from classifier.audit import Action, audit
from classifier.lockout import lockout_response


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        help_text="The 6-digit code your authenticator app shows now, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
    )


class AppCodeForm(CodeForm):
    code = forms.CharField(
        label="Code",
        max_length=16,
        help_text="The 6-digit code the app shows for lesionsite.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


@login_required
@require_http_methods(["GET", "POST"])
def code_step(request):
    """After the password: the code from the app (or a recovery code) before any other page opens."""
    next_url = _next_url(request)
    if two_factor.is_verified(request) or not two_factor.is_enrolled(request.user):
        return redirect(next_url)
    form, status = CodeForm(), 200
    if request.method == "POST":
        form = CodeForm(request.POST)
        if form.is_valid():
            checked = two_factor.check_code(request, request.user, form.cleaned_data["code"])
            if checked.locked_out:
                logout(request)
                return lockout_response(request)
            if checked.device is not None:
                _finish_sign_in(request, checked.device)
                return redirect(next_url)
            form.add_error("code", checked.error)
        status = 400
    return render(request, "registration/two_factor_code.html", {"form": form, "next": next_url}, status=status)


def _finish_sign_in(request, device) -> None:
    django_otp.login(request, device)
    request.session.cycle_key()  # a new session id for the now fully signed-in session
    if isinstance(device, StaticDevice):
        audit(request, Action.USED_RECOVERY_CODE, clinic=current_clinic(request))
        left = two_factor.recovery_codes_left(request.user)
        messages.warning(request, f"You signed in with a recovery code ({left} left): make new ones under Two-factor.")


@login_required
@require_http_methods(["GET", "POST"])
def manage(request):
    """Set up the authenticator app (QR code, secret, a code to confirm), renew recovery codes, or turn it off."""
    user = request.user
    enrolled = two_factor.is_enrolled(user)
    if enrolled and not two_factor.is_verified(request):
        return redirect("two-factor-code")
    action = request.POST.get("action") if request.method == "POST" else None
    if not enrolled:
        return _enrol(request, action)
    if action == "new_codes":
        codes = two_factor.new_recovery_codes(user)
        audit(request, Action.NEW_RECOVERY_CODES, clinic=current_clinic(request))
        return _show_codes(request, codes, "New recovery codes")
    form, status = CodeForm(), 200
    if action == "turn_off":
        form = CodeForm(request.POST)
        if form.is_valid():
            checked = two_factor.check_code(request, user, form.cleaned_data["code"])
            if checked.locked_out:
                logout(request)
                return lockout_response(request)
            if checked.device is not None:
                two_factor.turn_off(user)
                audit(request, Action.DISABLED_TWO_FACTOR, clinic=current_clinic(request))
                messages.success(request, "Two-factor sign-in is off.")
                return redirect("two-factor")
            form.add_error("code", checked.error)
        status = 400
    context = {
        "form": form,
        "required": two_factor.is_required(user),
        "codes_left": two_factor.recovery_codes_left(user),
    }
    return render(request, "registration/two_factor.html", context, status=status)


def _enrol(request, action: str | None):
    device = two_factor.pending_device(request.user)
    form, status = AppCodeForm(), 200
    if action == "confirm":
        form = AppCodeForm(request.POST)
        if form.is_valid():
            codes = two_factor.confirm(request, device, form.cleaned_data["code"])
            if codes is not None:
                request.session.cycle_key()
                audit(request, Action.ENABLED_TWO_FACTOR, clinic=current_clinic(request))
                return _show_codes(request, codes, "Two-factor sign-in is on")
            form.add_error("code", "That code does not match: check the app's clock and enter the code it shows now.")
        status = 400
    context = {
        "form": form,
        "required": two_factor.is_required(request.user),
        # segno's own markup of the otpauth:// link, which holds the issuer, the username and the secret
        # (percent-encoded by django-otp): no markup can come from a user.
        "qr_svg": mark_safe(two_factor.qr_svg(device)),  # nosec B308 B703
        "secret": two_factor.secret_text(device),
        "issuer": settings.OTP_TOTP_ISSUER,
    }
    return render(request, "registration/two_factor_enrol.html", context, status=status)


def _show_codes(request, codes: list[str], title: str):
    """The recovery codes, once: they are in this answer only (no-store, as every page), never shown again."""
    return render(request, "registration/two_factor_codes.html", {"codes": codes, "title": title})


def _next_url(request) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return wanted
    return resolve_url(settings.LOGIN_REDIRECT_URL)
