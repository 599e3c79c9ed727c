"""The pages a clinic follows its patients on: the patients list, a patient (body map, lesions, visits),
a lesion (timeline, score chart, change flags, comparison), their PDF reports, and for the clinic's
managers a patient's export and erasure.

Thin views: the clinic's rows only (classifier.access; anything else is a 404, as a missing id is),
one call to classifier.records or classifier.patient_record, one audit event per request, a render.
"""

from __future__ import annotations

import tempfile

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from classifier import records
from classifier.access import current_clinic, current_membership, require_manager
from classifier.api.throttling import page_upload_wait
from classifier.audit import Action, audit, audit_many
from classifier.forms import (
    EraseForm,
    LesionForm,
    LesionLabelForm,
    LesionPlaceForm,
    PatientForm,
    VisitUploadForm,
)
from classifier.models import Lesion, Patient
from classifier.patient_record import erase_patient, write_record_zip
from classifier.permissions import may_label
from classifier.uploads import UploadRefused, UploadRejected, store_uploads
from classifier.views import private_file, throttled_page

PATIENTS_PAGE_SIZE = 25
# An exported record is built in memory up to this size, then in a temporary file (pictures add up).
EXPORT_IN_MEMORY_BYTES = 16 * 1024 * 1024


def _clinic_patient(request, pk: int) -> Patient:
    return get_object_or_404(Patient.objects.in_clinic(current_clinic(request)).select_related("clinic"), pk=pk)


def _clinic_lesion(request, pk: int) -> Lesion:
    lesions = Lesion.objects.in_clinic(current_clinic(request)).select_related("patient__clinic")
    return get_object_or_404(lesions, pk=pk)


# --- Patients ---------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def patients(request):
    """The clinic's patients, searched by reference, with the ones that need a look marked; and a new one."""
    clinic = current_clinic(request)
    form, status = PatientForm(clinic=clinic), 200
    if request.method == "POST":
        form = PatientForm(request.POST, instance=Patient(clinic=clinic, created_by=request.user), clinic=clinic)
        patient = _save_patient(request, form, Action.CREATED_PATIENT) if clinic and form.is_valid() else None
        if patient is not None:
            messages.success(request, f"Patient {patient.reference} was added: place their lesions on the map.")
            return redirect("classifier:patient", patient.pk)
        if clinic is None:
            form.add_error(None, "You are not a member of any clinic: there is nowhere to add a patient.")
        status = 400
    search = request.GET.get("q", "").strip()[:64]
    audit(request, Action.LISTED_PATIENTS, clinic=clinic, detail={"searched": bool(search)})
    page = Paginator(records.clinic_patients(clinic, search), PATIENTS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "rows": records.patient_rows(page.object_list), "search": search, "form": form}
    return render(request, "classifier/patients.html", context, status=status)


def _save_patient(request, form: PatientForm, action: str, detail: dict | None = None) -> Patient | None:
    """Save the patient and audit it, both or neither. None when another request took the reference
    meanwhile (after the form checked it): the form then says so, as for a reference it caught itself."""
    try:
        with transaction.atomic():
            patient = form.save()
            audit(request, action, patient, detail=detail)
    except IntegrityError:
        form.add_error("reference", "The clinic already has a patient with this reference.")
        return None
    return patient


def _patient_page(request, patient: Patient, *, status: int = 200, **forms):
    shown = records.patient_page(patient)
    membership = current_membership(request)
    context = {
        "patient": patient,
        "lesions": shown.lesions,
        "bodymap": shown.bodymap,
        "placing": True,
        "patient_form": forms.get("patient_form") or PatientForm(instance=patient, clinic=patient.clinic),
        "lesion_form": forms.get("lesion_form") or LesionPlaceForm(),
        # One upload form per lesion, each with its own ids so every label finds its control.
        "lesion_rows": [(record, VisitUploadForm(auto_id=f"visit-{record.lesion.pk}-%s")) for record in shown.lesions],
        "is_manager": membership is not None and membership.is_manager,
    }
    return render(request, "classifier/patient.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def patient_detail(request, pk: int):
    """A patient: details, the body map and their lesions with each one's latest picture; POST changes the details."""
    patient = _clinic_patient(request, pk)
    if request.method == "POST":
        form = PatientForm(request.POST, instance=patient, clinic=patient.clinic)
        changed = {"fields": sorted(form.changed_data)}
        if form.is_valid() and _save_patient(request, form, Action.CHANGED_PATIENT, changed):
            messages.success(request, "The patient's details were saved.")
            return redirect("classifier:patient", patient.pk)
        patient.refresh_from_db()  # the page shows what is stored, the form what was typed
        audit(request, Action.VIEWED_PATIENT, patient)
        return _patient_page(request, patient, status=400, patient_form=form)
    audit(request, Action.VIEWED_PATIENT, patient)
    return _patient_page(request, patient)


@login_required
@require_POST
def new_lesion(request, pk: int):
    """A lesion placed on the patient's body map (or chosen from the site list)."""
    patient = _clinic_patient(request, pk)
    form = LesionPlaceForm(request.POST, instance=Lesion(patient=patient, created_by=request.user))
    if form.is_valid():
        with transaction.atomic():
            lesion = form.save()
            audit(request, Action.CREATED_LESION, lesion)
        messages.success(request, f"{lesion} was added. Upload its first pictures from its row below.")
        return redirect(f"{reverse('classifier:patient', args=[patient.pk])}#lesion-{lesion.pk}")
    audit(request, Action.VIEWED_PATIENT, patient)
    return _patient_page(request, patient, status=400, lesion_form=form)


@login_required
@require_POST
def upload_visit(request, pk: int):
    """Pictures of one visit of a lesion, stored and queued for the model as any upload is."""
    lesion = _clinic_lesion(request, pk)
    back = _safe_next(request) or reverse("classifier:lesion", args=[lesion.pk])
    wait = page_upload_wait(request)
    if wait is not None:
        return throttled_page(request, wait, back)
    form = VisitUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"Nothing was uploaded: {form[field].label}: {' '.join(errors)}")
        return redirect(back)
    try:
        _, stored = store_uploads(request.user, form.cleaned_data["files"], clinic=lesion.patient.clinic,
                                  lesion=lesion, taken_at=form.cleaned_data.get("taken_at"))  # fmt: skip
    except UploadRefused as refused:
        reasons = "; ".join(f"{r.filename or 'a file'}: {r.message}" for r in refused.rejections)
        messages.error(request, f"Nothing was uploaded: {reasons}")
        return redirect(back)
    except UploadRejected as rejected:
        messages.error(request, f"Nothing was uploaded: {rejected.message}")
        return redirect(back)
    new = [item.image for item in stored if item.created]
    audit_many(request, Action.UPLOADED, new)
    known = len(stored) - len(new)
    words = f"{len(new)} picture{'s' if len(new) != 1 else ''} of {lesion} uploaded; the readings follow shortly."
    if known:
        words += f" {known} had been uploaded to this clinic before and keep{'s' if known == 1 else ''} their details."
    messages.success(request, words)
    return redirect(back)


def _safe_next(request) -> str:
    back = request.POST.get("next", "")
    ok = url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return back if ok else ""


@login_required
@require_GET
def patient_report(request, pk: int):
    """The patient's PDF report: every lesion with its timeline, latest reading, heatmap and change flags."""
    patient = _clinic_patient(request, pk)
    pdf = records.patient_report_pdf(patient, request.user)
    audit(request, Action.EXPORTED_PDF, patient, detail={"report": "patient"})
    return pdf_response(pdf, f"lesionsite-patient-{patient.pk}-{timezone.localdate():%Y-%m-%d}.pdf")


def pdf_response(pdf: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"  # patient data: never kept by a cache
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- A clinic manager's: export and erase ---------------------------------------------------


def _managed_patient(request, pk: int) -> Patient:
    """The patient, to a manager of its clinic; anyone else gets 404, as for a page that is not there."""
    require_manager(request)
    return _clinic_patient(request, pk)


@login_required
@require_http_methods(["GET", "POST"])
def patient_export(request, pk: int):
    """GET: what the export holds, and a button; POST: the zip (record.json and the stored pictures)."""
    patient = _managed_patient(request, pk)
    if request.method == "GET":
        audit(request, Action.VIEWED_PATIENT, patient, detail={"page": "export"})
        return render(request, "classifier/patient_export.html", {"patient": patient})
    out = tempfile.SpooledTemporaryFile(max_size=EXPORT_IN_MEMORY_BYTES)
    write_record_zip(patient, out)
    audit(request, Action.EXPORTED_RECORD, patient)
    out.seek(0)
    response = private_file(out, "application/zip")
    response["Content-Disposition"] = (
        f'attachment; filename="lesionsite-record-patient-{patient.pk}-{timezone.localdate():%Y-%m-%d}.zip"'
    )
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def patient_erase(request, pk: int):
    """GET: what erasing removes and keeps, and the confirmation; POST with the reference typed: erase, for good."""
    patient = _managed_patient(request, pk)
    form, status = EraseForm(patient=patient), 200
    if request.method == "POST":
        form = EraseForm(request.POST, patient=patient)
        if form.is_valid():
            reference = patient.reference
            with transaction.atomic():
                erased = erase_patient(patient)
                audit(request, Action.ERASED, erased, detail=erased.counts)
            messages.success(
                request,
                f"Patient {reference} was erased: {erased.lesions} lesion(s), {erased.images} picture(s) and their "
                "readings. The audit log keeps that it happened, under the patient's number, without their data.",
            )
            return redirect("classifier:patients")
        status = 400
    audit(request, Action.VIEWED_PATIENT, patient, detail={"page": "erase"})
    counts = {"lesions": patient.lesions.count(), "images": records.image_count(patient)}
    return render(request, "classifier/patient_erase.html", {"patient": patient, "form": form, **counts}, status=status)


# --- Lesions ----------------------------------------------------------------------------


def _lesion_page(request, lesion: Lesion, *, status: int = 200, form=None, label_form=None):
    shown = records.lesion_page(lesion, request.GET.get("a"), request.GET.get("b"))
    context = {
        "lesion": lesion,
        "patient": lesion.patient,
        "record": shown.record,
        "chart": shown.chart,
        "comparison": shown.comparison,
        "pictures": shown.comparison.pictures if shown.comparison else (),
        "form": form or LesionForm(instance=lesion),
        "label_form": label_form or (LesionLabelForm() if may_label(request.user) else None),
        "visit_form": VisitUploadForm(),
        "score_rise": settings.CHANGE_SCORE_RISE,
        "area_change_percent": round(100 * settings.CHANGE_AREA_FRACTION),
    }
    return render(request, "classifier/lesion.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def lesion_detail(request, pk: int):
    """A lesion: its timeline, score chart, change flags and a comparison of two visits; POST changes its details."""
    lesion = _clinic_lesion(request, pk)
    if request.method == "POST":
        form = LesionForm(request.POST, instance=lesion)
        if form.is_valid():
            with transaction.atomic():
                form.save()
                audit(request, Action.CHANGED_LESION, lesion, detail={"fields": sorted(form.changed_data)})
            messages.success(request, "The lesion's details were saved.")
            return redirect("classifier:lesion", lesion.pk)
        lesion.refresh_from_db()
        audit(request, Action.VIEWED_LESION, lesion)
        return _lesion_page(request, lesion, status=400, form=form)
    audit(request, Action.VIEWED_LESION, lesion)
    return _lesion_page(request, lesion)


@login_required
@require_POST
def lesion_label(request, pk: int):
    """Labellers in the lesion's clinic: its confirmed diagnosis, which labels all its images (Lesion.set_label)."""
    if not may_label(request.user):
        raise Http404("Only labellers record a confirmed diagnosis.")
    lesion = _clinic_lesion(request, pk)
    form = LesionLabelForm(request.POST)
    if not form.is_valid():
        audit(request, Action.VIEWED_LESION, lesion)
        return _lesion_page(request, lesion, status=400, label_form=form)
    data = form.cleaned_data
    with transaction.atomic():
        count = lesion.set_label(data["diagnosis"], data["method"], data["note"], by=request.user)
        audit(request, Action.LABELLED, lesion, detail={"diagnosis": data["diagnosis"], "images": count})
    messages.success(request, f"{lesion} is labelled {lesion.get_diagnosis_display()}, as are its {count} pictures.")
    return redirect("classifier:lesion", lesion.pk)


@login_required
@require_GET
def lesion_report(request, pk: int):
    lesion = _clinic_lesion(request, pk)
    pdf = records.lesion_report_pdf(lesion, request.user)
    audit(request, Action.EXPORTED_PDF, lesion, detail={"report": "lesion"})
    return pdf_response(pdf, f"lesionsite-lesion-{lesion.pk}-{timezone.localdate():%Y-%m-%d}.pdf")
