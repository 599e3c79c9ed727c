"""Which clinic a request works in: the one place that decides what a user may see.

Pages use the user's current clinic (the header's switcher changes it). API clients may
pick another of their clinics for one request with an ``X-Clinic: <id>`` header or a
``?clinic=<id>`` parameter; a clinic they do not belong to is a 404, as any object they
may not see is. Views then scope every query with ``.in_clinic(clinic)``.

The user's memberships are read once per request (one query) and kept on it.
"""

from __future__ import annotations

from django.http import Http404

from classifier.clinics import Clinic, Membership

CLINIC_HEADER = "X-Clinic"
CLINIC_PARAMETER = "clinic"
_CACHE = "_lesionsite_access"


class NotInClinic(Http404):
    """The request names a clinic the user does not belong to (or not a clinic at all)."""


def _http_request(request):
    """The Django request under a DRF one, so both share what is cached."""
    return getattr(request, "_request", request)


def memberships(request) -> list[Membership]:
    """The user's memberships with their clinics, by clinic name; read once per request."""
    raw = _http_request(request)
    cached = getattr(raw, _CACHE + "_memberships", None)
    if cached is None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            cached = []
        else:
            cached = list(Membership.objects.filter(user=user).select_related("clinic").order_by("clinic__name"))
        setattr(raw, _CACHE + "_memberships", cached)
    return cached


def current_membership(request, *, allow_choice: bool = False) -> Membership | None:
    """The membership the request works under; None for a user in no clinic.

    ``allow_choice``: the request may name one of the user's clinics (API clients);
    naming one they are not in raises NotInClinic (a 404).
    """
    raw = _http_request(request)
    key = _CACHE + ("_chosen" if allow_choice else "_current")
    if hasattr(raw, key):
        return getattr(raw, key)
    mine = memberships(request)
    chosen = _chosen_clinic_id(request) if allow_choice else None
    if chosen is not None:
        membership = next((m for m in mine if m.clinic_id == chosen), None)
        if membership is None:
            raise NotInClinic(f"You are not a member of clinic {chosen}.")
    else:
        # The current one; a user whose current membership was removed works in their first clinic.
        membership = next((m for m in mine if m.is_current), None) or min(mine, key=lambda m: m.pk, default=None)
    setattr(raw, key, membership)
    setattr(raw, _CACHE + "_resolved", membership)
    return membership


def current_clinic(request, *, allow_choice: bool = False) -> Clinic | None:
    """The clinic whose records the request may read; None for a user in no clinic (who sees nothing)."""
    membership = current_membership(request, allow_choice=allow_choice)
    return membership.clinic if membership else None


def resolved_clinic_id(request) -> int | None:
    """The clinic this request was resolved to so far (for the audit log), without a query of its own."""
    membership = getattr(_http_request(request), _CACHE + "_resolved", None)
    return membership.clinic_id if membership else None


def require_manager(request, *, allow_choice: bool = False) -> Membership:
    """The request's membership if it is a manager's; anyone else gets 404, as for a page that is not there."""
    membership = current_membership(request, allow_choice=allow_choice)
    if membership is None or not membership.is_manager:
        raise Http404("Only the clinic's managers see this page.")
    return membership


def _chosen_clinic_id(request) -> int | None:
    raw = request.headers.get(CLINIC_HEADER) or _query(request).get(CLINIC_PARAMETER)
    if raw in (None, ""):
        return None
    try:
        return int(str(raw).strip())
    except ValueError:
        raise NotInClinic(f"{CLINIC_HEADER} / ?{CLINIC_PARAMETER}= must be a clinic's id, not {raw!r}.") from None


def _query(request):
    return getattr(request, "query_params", None) or request.GET


def clinic_context(request) -> dict:
    """Template context: the clinic the pages show, and the user's clinics for the header's switcher."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = current_membership(request)
    return {"current_membership": membership, "my_memberships": memberships(request)}
