"""Web pages for clinicians. Views stay thin: access check, one call, response.

Every page works in the user's current clinic (classifier.access) and audits what it
shows of the clinic's records (classifier.audit).
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.exceptions import AuthenticationFailed

from classifier import history as history_query
from classifier import thumbnails
from classifier.access import current_clinic
from classifier.api.authentication import ApiTokenAuthentication
from classifier.api.throttling import page_upload_wait
from classifier.audit import Action, audit, audit_many
from classifier.forms import NOTE_MAX_LENGTH, AttachForm, ClinicianNoteForm, HistoryFilterForm, UploadForm
from classifier.lib.imaging import THUMBNAIL_CONTENT_TYPE
from classifier.models import AttachRefused, LesionImage, ModelVersion, Prediction, UploadBatch
from classifier.uploads import UploadRefused, UploadRejected, store_uploads
from training.classes import CLASSES, FULL_NAMES, MALIGNANT_CLASSES
from training.malignancy import SUMMED

HISTORY_PAGE_SIZE = 20


@login_required
def upload(request):
    """The upload form. Asked for JSON (upload.js sends it with fetch), it answers JSON instead of a page."""
    limits = {"max_files": settings.UPLOAD_MAX_FILES, "max_bytes": settings.UPLOAD_MAX_BYTES}
    clinic = current_clinic(request)
    if request.method != "POST":
        context = {"form": UploadForm(clinic=clinic), "limits": limits, "clinic": clinic}
        return render(request, "classifier/upload.html", context)
    wants_json = "application/json" in request.headers.get("Accept", "")
    wait = page_upload_wait(request)
    if wait is not None:
        if wants_json:
            response = JsonResponse({"detail": too_many_uploads(wait), "code": "throttled", "retry_after": wait},
                                    status=429)  # fmt: skip
            response["Retry-After"] = str(wait)
            return response
        return throttled_page(request, wait, reverse("classifier:upload"))
    form = UploadForm(request.POST, request.FILES, clinic=clinic)
    refused = None
    if form.is_valid():
        fields = {key: form.cleaned_data.get(key) for key in ("lesion", "taken_at", "age", "sex", "site")}
        try:
            batch, stored = store_uploads(request.user, form.cleaned_data["files"], clinic=clinic, **fields)
        except (UploadRefused, UploadRejected) as exc:
            refused = exc
        else:
            audit_many(request, Action.UPLOADED, [item.image for item in stored if item.created])
            _say_what_was_known(request, stored)
            destination = (stored[0].prediction if batch is None else batch).get_absolute_url()
            return JsonResponse({"redirect": destination}, status=201) if wants_json else redirect(destination)
    status = refused.http_status if refused else 400
    if wants_json:
        return JsonResponse(refused.as_dict() if refused else _form_errors(form), status=status)
    refused_files = refused if isinstance(refused, UploadRefused) else None
    if refused:
        form.add_error("files", _nothing_stored(refused_files) if refused_files else refused.message)
    context = {"form": form, "limits": limits, "refused": refused_files, "clinic": clinic}
    return render(request, "classifier/upload.html", context, status=status)


def too_many_uploads(wait: int) -> str:
    return (
        f"Nothing was stored: you have uploaded as often as allowed for now ({settings.UPLOAD_RATE_LIMIT} per "
        f"person, through the pages and the API together). Try again in {wait} second{'s' if wait != 1 else ''}."
    )


def throttled_page(request, wait: int, back: str):
    """429 for a plain form post over the upload rate: what happened, when to retry, and the way back."""
    context = {"message": too_many_uploads(wait), "back": back}
    response = render(request, "classifier/throttled.html", context, status=429)
    response["Retry-After"] = str(wait)
    return response


def _nothing_stored(refused: UploadRefused) -> str:
    if refused.file_count == 1:
        return "Nothing was stored: the file was refused."
    count = len(refused.refused)
    verb = "was" if count == 1 else "were"
    return f"Nothing was stored: {count} of the {refused.file_count} files {verb} refused."


def _form_errors(form: UploadForm) -> dict:
    fields = {name: [error["message"] for error in errors] for name, errors in form.errors.get_json_data().items()}
    return {"detail": "Nothing was stored: correct the fields marked below.", "code": "invalid", "fields": fields}


def _say_what_was_known(request, stored) -> None:
    """Tell the clinician which files were already in the clinic's history, and which details were not applied."""
    known = [item for item in stored if not item.created]
    if not known:
        return
    if len(stored) == 1:
        messages.info(request, f"This clinic already had this picture, uploaded on "
                      f"{known[0].image.created_at:%Y-%m-%d}: here is its reading.")  # fmt: skip
    ignored = sorted({field for item in known for field in item.ignored_fields})
    if ignored:
        fields = " and ".join(LesionImage._meta.get_field(name).verbose_name for name in ignored)
        messages.warning(
            request,
            f"{fields.capitalize()} not changed: a picture uploaded before keeps the details stored with it "
            "(attach a one-off upload to a lesion from its result page).",
        )


@login_required
def prediction_detail(request, pk: int):
    prediction = get_object_or_404(Prediction.objects.in_clinic(current_clinic(request)), pk=pk)
    image = prediction.image
    audit(request, Action.VIEWED_IMAGE, image, detail={"prediction": prediction.pk})
    # A reading already done when the page opens is drawn at once, not after the first poll.
    probabilities = prediction.probabilities if prediction.status == Prediction.Status.DONE else None
    classes = [
        {
            "code": code,
            "name": FULL_NAMES[code],
            "malignant": code in MALIGNANT_CLASSES,
            # As static/prediction.js writes them: the bar's share and the percentage with one decimal.
            "bar": f"{probabilities[code]:.4f}" if probabilities else "0",
            "percent": f"{100 * probabilities[code]:.1f} %" if probabilities else "–",
            "is_top": bool(probabilities) and code == prediction.top_class,
        }
        for code in CLASSES
    ]
    version = prediction.model_version
    entry = prediction.batch_entries.select_related("batch").order_by("-batch__created_at").first()
    context = {
        "prediction": prediction,
        "image": image,
        "classes": classes,
        "malignant_classes": ", ".join(FULL_NAMES[code].lower() for code in CLASSES if code in MALIGNANT_CLASSES),
        "score_meaning": _score_meaning(version),
        # One decimal, as static/prediction.js writes them: a fitted score's threshold (v5: 11.5 %) would
        # round to a whole percent that a score just under it also shows, beside "not flagged".
        "score_percent": _one_decimal(prediction.malignant_probability),
        "threshold_percent": _one_decimal(prediction.flag_threshold),
        "flag": version.flag_figures(prediction.flag_threshold) if version else None,
        # A batch of the clinic's: an image attached to another clinic's lesion left its batch behind.
        "batch": entry.batch if entry and entry.batch.clinic_id == image.clinic_id else image.batch,
        "note_form": ClinicianNoteForm(instance=image),
        "note_max_length": NOTE_MAX_LENGTH,
        "attach_form": AttachForm(user=request.user) if image.lesion_id is None else None,
    }
    return render(request, "classifier/prediction.html", context)


def _one_decimal(fraction: float | None) -> str:
    return "" if fraction is None else f"{100 * fraction:.1f}"


def _score_meaning(version: ModelVersion | None) -> str:
    """What the malignancy score means for the version that read the picture (a queued one: the active one)."""
    version = version or ModelVersion.active()
    return (version.malignancy_score if version else SUMMED).description


@login_required
def batch_detail(request, pk: int):
    batch = get_object_or_404(UploadBatch.objects.in_clinic(current_clinic(request)), pk=pk)
    audit(request, Action.VIEWED_BATCH, batch)
    predictions = batch.predictions_by_attention()
    # The same counts batch.js reports, so a batch already finished when the page loads reads
    # the same before the first poll and without JavaScript.
    context = {
        "batch": batch,
        "predictions": predictions,
        "finished": sum(1 for prediction in predictions if prediction.is_finished),
        "flagged": sum(1 for p in predictions if p.attention_group == Prediction.FLAGGED),
        "failed": sum(1 for p in predictions if p.attention_group == Prediction.FAILED),
    }
    return render(request, "classifier/batch.html", context)


def _filtered_history(request) -> tuple[HistoryFilterForm, object]:
    """The form bound to the query string, and the clinic's images it selects.

    Filters that do not validate select nothing rather than being silently dropped:
    a clinician who mistyped a date must not believe they are looking at that day.
    """
    clinic = current_clinic(request)
    images = history_query.clinic_images(clinic)
    form = HistoryFilterForm(request.GET or None, clinic=clinic)
    if not form.is_bound:
        return form, history_query.apply_filters(images, {})
    if not form.is_valid():
        return form, images.none()
    return form, history_query.apply_filters(images, form.cleaned_data)


@login_required
@require_GET
def history(request):
    form, images = _filtered_history(request)
    audit(request, Action.VIEWED_HISTORY, _filtered_patient(form))
    page = Paginator(images, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "next_url": request.get_full_path(),
        "filtered": bool(query),
    }
    return render(request, "classifier/history.html", context)


@login_required
@require_GET
def history_export(request):
    """The history's rows matching the current filters, as a CSV download streamed row by row."""
    form, images = _filtered_history(request)
    if form.is_bound and not form.is_valid():
        errors = "; ".join(f"{form[name].label}: {' '.join(errs)}" for name, errs in form.errors.items())
        return HttpResponse(f"Fix the filters first. {errors}", status=400, content_type="text/plain; charset=utf-8")
    audit(request, Action.EXPORTED_CSV, _filtered_patient(form))
    response = StreamingHttpResponse(
        history_query.csv_lines(images.iterator(chunk_size=500)), content_type="text/csv; charset=utf-8"
    )
    filename = f"lesionsite-history-{timezone.localdate():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _filtered_patient(form: HistoryFilterForm):
    """The patient the history was narrowed to (the audit log's object), if any."""
    return form.cleaned_data.get("patient") if form.is_bound and form.is_valid() else None


@login_required
@require_http_methods(["GET", "POST"])
def image_note(request, pk: int):
    """The clinic's note on one of its images; anyone outside the clinic, admins included, gets 404."""
    image = get_object_or_404(LesionImage.objects.in_clinic(current_clinic(request)).select_related("lesion"), pk=pk)
    back = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = ""
    back = back or reverse("classifier:history")
    if request.method == "POST":
        form = ClinicianNoteForm(request.POST, instance=image)
        if form.is_valid():
            image.clinician_note = form.cleaned_data["clinician_note"]
            image.save(update_fields=["clinician_note"])  # never overwrite an admin's concurrent label
            audit(request, Action.CHANGED_NOTE, image)
            done = "saved for" if image.clinician_note else "removed from"
            messages.success(request, f"Note {done} {image}.")
            return redirect(back)
        status = 400
    else:
        form, status = ClinicianNoteForm(instance=image), 200
        audit(request, Action.VIEWED_IMAGE, image)
    context = {"image": image, "form": form, "next": back, "max_length": NOTE_MAX_LENGTH}
    return render(request, "classifier/note.html", context, status=status)


def login_or_token_required(view):
    """Browsers use their session (none: the login page); REST clients send `Authorization: Token <key>`.

    A token that is wrong or revoked gets 401, never a redirect to a login page a
    REST client cannot use. Another scheme in the header (e.g. a proxy's Basic
    credentials) is not a token: the session decides, as on any page.
    """

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            found = ApiTokenAuthentication().authenticate(request)
        except AuthenticationFailed as exc:
            response = JsonResponse({"detail": str(exc.detail)}, status=401)
            response["WWW-Authenticate"] = ApiTokenAuthentication().authenticate_header(request)
            return response
        if found is None:
            return login_required(view)(request, *args, **kwargs)
        request.user = found[0]
        request.authenticated_by_token = True  # an API client: it may name its clinic (classifier.access)
        return view(request, *args, **kwargs)

    return wrapped


def private_file(handle, content_type: str) -> FileResponse:
    # Never kept, even by the browser: a picture of a patient's skin must not stay in a
    # shared workstation's disk cache after logout, where anyone with the account or the
    # disk could read it. Lists then fetch their thumbnails again on each visit.
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _clinic_image(request, pk: int) -> LesionImage:
    """One of the request's clinic's images (an API client may name its clinic), else 404."""
    clinic = current_clinic(request, allow_choice=getattr(request, "authenticated_by_token", False))
    return get_object_or_404(LesionImage.objects.in_clinic(clinic).select_related("lesion"), pk=pk)


def open_stored_image(image: LesionImage):
    try:
        return image.file.open("rb")
    except FileNotFoundError:
        raise Http404("The stored image is missing.") from None


def open_thumbnail(image: LesionImage):
    try:
        return default_storage.open(thumbnails.ensure_thumbnail(image), "rb")
    except FileNotFoundError:
        raise Http404("The stored image is missing.") from None


@login_or_token_required
@require_GET
def image_file(request, pk: int):
    """The stored image, to the members of its clinic only: uploads have no public URL."""
    image = _clinic_image(request, pk)
    handle = open_stored_image(image)
    audit(request, Action.DOWNLOADED_FILE, image, detail={"file": "image"})
    return private_file(handle, image.stored_content_type)


@login_or_token_required
@require_GET
def image_thumbnail(request, pk: int):
    """The image's small preview for lists, to whoever may see the image; made now if it has none yet."""
    image = _clinic_image(request, pk)
    handle = open_thumbnail(image)
    audit(request, Action.DOWNLOADED_FILE, image, detail={"file": "thumbnail"})
    return private_file(handle, THUMBNAIL_CONTENT_TYPE)


@login_required
@require_POST
def attach_image(request, pk: int):
    """The result page's form: make a one-off upload a picture of a lesion (of any of the user's clinics)."""
    image = get_object_or_404(LesionImage.objects.in_clinic(current_clinic(request)), pk=pk)
    form = AttachForm(request.POST, user=request.user)
    back = image.latest_prediction.get_absolute_url() if image.latest_prediction_id else reverse("classifier:history")
    if not form.is_valid():
        messages.error(request, "Choose one of your clinics' lesions to attach the image to.")
        return redirect(back)
    lesion = form.cleaned_data["lesion"]
    from_clinic = image.clinic_id
    try:
        image.attach_to(lesion)
    except AttachRefused as exc:
        messages.error(request, f"Not attached: {exc}")
        return redirect(back)
    audit(request, Action.ATTACHED_IMAGE, image, detail={"lesion": lesion.pk, "from_clinic": from_clinic})
    if image.clinic_id != from_clinic:
        messages.success(request, f"{image} is now a picture of {lesion}, in {lesion.patient.clinic.name}.")
        return redirect("classifier:home")  # the image has left the current clinic
    messages.success(request, f"{image} is now a picture of {lesion}.")
    return redirect(back)
