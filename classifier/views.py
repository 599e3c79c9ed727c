"""Web pages for clinicians. Views stay thin: access check, one call, response."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from classifier.forms import HistoryFilterForm, UploadForm
from classifier.models import Prediction
from classifier.scoping import visible_batches, visible_images, visible_predictions
from classifier.triage import by_attention
from classifier.uploads import ImageRejected, UploadRejected, store_uploads
from training.classes import CLASSES, FULL_NAMES, MALIGNANT_CLASSES

HISTORY_PAGE_SIZE = 20


@login_required
def upload(request):
    limits = {"max_files": settings.UPLOAD_MAX_FILES, "max_bytes": settings.UPLOAD_MAX_BYTES}
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            fields = {key: form.cleaned_data.get(key) for key in ("age", "sex", "site")}
            try:
                batch, stored = store_uploads(request.user, form.cleaned_data["files"], **fields)
            except (ImageRejected, UploadRejected) as exc:
                form.add_error("files", exc.message)
            else:
                if batch is not None:
                    return redirect(batch)
                return redirect(stored[0].prediction)
        return render(request, "classifier/upload.html", {"form": form, "limits": limits}, status=400)
    return render(request, "classifier/upload.html", {"form": UploadForm(), "limits": limits})


@login_required
def prediction_detail(request, pk: int):
    prediction = get_object_or_404(visible_predictions(request.user), pk=pk)
    classes = [{"code": code, "name": FULL_NAMES[code], "malignant": code in MALIGNANT_CLASSES} for code in CLASSES]
    return render(request, "classifier/prediction.html", {"prediction": prediction, "classes": classes})


@login_required
def batch_detail(request, pk: int):
    batch = get_object_or_404(visible_batches(request.user), pk=pk)
    predictions = by_attention(visible_predictions(request.user).filter(image__batch=batch))
    finished = sum(1 for prediction in predictions if prediction.is_finished)
    context = {"batch": batch, "predictions": predictions, "finished": finished}
    return render(request, "classifier/batch.html", context)


@login_required
def history(request):
    latest = Prediction.objects.filter(image=OuterRef("pk")).order_by("-created_at", "-id")
    images = (
        visible_images(request.user)
        .filter(owner=request.user)  # history is the clinician's own, admins included
        .annotate(
            prediction_id=Subquery(latest.values("id")[:1]),
            prediction_status=Subquery(latest.values("status")[:1]),
            prediction_top_class=Subquery(latest.values("top_class")[:1]),
            prediction_top_probability=Subquery(latest.values("top_probability")[:1]),
            prediction_is_malignant=Subquery(latest.values("is_malignant")[:1]),
        )
    )
    form = HistoryFilterForm(request.GET or None)
    if form.is_valid():
        wanted = form.cleaned_data
        if wanted["top_class"]:
            images = images.filter(prediction_top_class=wanted["top_class"])
        if wanted["status"]:
            images = images.filter(prediction_status=wanted["status"])
        if wanted["date_from"]:
            images = images.filter(created_at__date__gte=wanted["date_from"])
        if wanted["date_to"]:
            images = images.filter(created_at__date__lte=wanted["date_to"])
    page = Paginator(images.order_by("-created_at", "-id"), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode(), "full_names": FULL_NAMES}
    return render(request, "classifier/history.html", context)


@login_required
@require_GET
def image_file(request, pk: int):
    """The stored image, to its owner and admins only: uploads have no public URL."""
    image = get_object_or_404(visible_images(request.user), pk=pk)
    try:
        handle = image.file.open("rb")
    except FileNotFoundError:
        raise Http404("The stored image is missing.") from None
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
