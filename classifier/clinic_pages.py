"""Pages about the clinic itself: switching clinics, and, for its managers, the members and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from classifier import audit_log
from classifier.access import memberships, require_manager
from classifier.audit import Action, audit
from classifier.clinics import Membership, MembershipError
from classifier.forms import AddMemberForm, AuditFilterForm, RoleForm

AUDIT_PAGE_SIZE = 50


@login_required
@require_POST
def switch_clinic(request):
    """The header's switcher: work in another of the user's clinics from now on."""
    wanted = request.POST.get("clinic", "")
    membership = next((m for m in memberships(request) if str(m.clinic_id) == wanted.strip()), None)
    if membership is None:
        raise Http404("You are not a member of that clinic.")
    previous = next((m.clinic_id for m in memberships(request) if m.is_current), None)
    with transaction.atomic():
        membership.make_current()
        audit(request, Action.SWITCHED_CLINIC, membership.clinic, detail={"from_clinic": previous})
    messages.success(request, f"You are working in {membership.clinic.name}.")
    return redirect("classifier:home")


@login_required
@require_http_methods(["GET", "POST"])
def members(request):
    """A clinic manager's page: add an existing user, change a member's role, remove a member."""
    mine = require_manager(request)
    clinic = mine.clinic
    add_form, status = AddMemberForm(), 200
    if request.method == "POST":
        change = request.POST.get("change")
        if change == "add":
            add_form = AddMemberForm(request.POST)
            if add_form.is_valid():
                status = _apply(request, lambda: clinic.add_member(add_form.cleaned_data["username"],
                                                                   add_form.cleaned_data["role"]), "added")  # fmt: skip
            else:
                status = 400
        elif change in ("role", "remove"):
            chosen = request.POST.get("membership", "")
            if not chosen.isdigit():
                raise Http404("No such member.")
            membership = get_object_or_404(Membership.objects.filter(clinic=clinic).select_related("user"), pk=chosen)
            if change == "remove":
                status = _apply(request, membership.remove, "removed", membership)
            else:
                form = RoleForm(request.POST)
                if form.is_valid():
                    role = form.cleaned_data["role"]
                    status = _apply(request, lambda: membership.change_role(role), "role", membership)
                else:
                    messages.error(request, "Choose a role: clinician or clinic manager.")
                    status = 400
        else:
            messages.error(request, "Unknown change.")
            status = 400
        if status == 200:
            return redirect("classifier:members")
    people = Membership.objects.filter(clinic=clinic).select_related("user").order_by("user__username")
    context = {"clinic": clinic, "people": people, "add_form": add_form, "roles": Membership.Role.choices}
    return render(request, "classifier/members.html", context, status=status)


def _apply(request, change, what: str, membership: Membership | None = None) -> int:
    """Make a change of members and audit it, both or neither; a refusal is shown as the clinic's message."""
    try:
        with transaction.atomic():
            if membership is not None:  # audited first: a removed membership has no id any more
                _audit_membership(request, membership, what)
            result = change()
            if membership is None:
                _audit_membership(request, result, what)
    except MembershipError as exc:
        messages.error(request, str(exc))
        return 400
    messages.success(request, "The clinic's members were changed.")
    return 200


def _audit_membership(request, membership: Membership, what: str) -> None:
    detail = {"change": what, "member": membership.user.get_username()}
    if what != "removed":
        detail["role"] = request.POST.get("role", membership.role)
    audit(request, Action.CHANGED_MEMBERSHIP, membership, detail=detail)


def _filtered_events(request):
    clinic = require_manager(request).clinic
    form = AuditFilterForm(request.GET or None, clinic=clinic)
    events = audit_log.clinic_events(clinic)
    if not form.is_bound:
        return form, audit_log.apply_filters(events, {})
    if not form.is_valid():
        return form, events.none()
    return form, audit_log.apply_filters(events, form.cleaned_data)


@login_required
@require_GET
def audit_log_page(request):
    """A clinic manager's page: who read or changed which records, filtered by user, action, dates, patient."""
    form, events = _filtered_events(request)
    audit(request, Action.VIEWED_AUDIT_LOG)
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode(), "retention_days": settings.AUDIT_RETENTION_DAYS}
    return render(request, "classifier/audit_log.html", context)


@login_required
@require_GET
def audit_log_export(request):
    form, events = _filtered_events(request)
    if form.is_bound and not form.is_valid():
        errors = "; ".join(f"{form[name].label}: {' '.join(errs)}" for name, errs in form.errors.items())
        return HttpResponse(f"Fix the filters first. {errors}", status=400, content_type="text/plain; charset=utf-8")
    audit(request, Action.EXPORTED_AUDIT_LOG)
    response = StreamingHttpResponse(
        audit_log.csv_lines(events.iterator(chunk_size=1000)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="lesionsite-audit-{timezone.localdate():%Y-%m-%d}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response
