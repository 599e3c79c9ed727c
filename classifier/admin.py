"""The admin side: labelling images (one by one, in bulk, from a queue) and model versions."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from classifier.labelling import QUEUE_ORDER, label_images, labelling_queue, with_latest_prediction
from classifier.models import (
    CLASS_CHOICES,
    METHOD_CHOICES,
    LesionImage,
    ModelVersion,
    Prediction,
    TrainingJob,
    UnlabelledImage,
    UploadBatch,
)
from classifier.reruns import images_of, rerun_predictions
from classifier.training_jobs import JobConflict, start_training_job
from training.classes import FULL_NAMES


class LabelForm(forms.Form):
    # A blank first choice, required: nothing is pre-selected, so one click cannot
    # label a whole selection with whatever happened to be listed first.
    diagnosis = forms.ChoiceField(choices=[("", "— choose the confirmed diagnosis —"), *CLASS_CHOICES])
    method = forms.ChoiceField(choices=[("", "— choose how it was confirmed —"), *METHOD_CHOICES], label="Confirmed by")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class PredictionInline(admin.TabularInline):
    model = Prediction
    extra = 0
    fields = ["status", "top_class", "top_probability", "malignant_probability", "model_version", "created_at"]
    readonly_fields = fields
    can_delete = False


class LesionImageAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "__str__", "owner", "predicted", "label_status", "created_at"]
    list_filter = ["diagnosis", "diagnosis_method", "created_at"]
    search_fields = ["original_filename", "sha256", "owner__username", "lesion_id"]
    readonly_fields = ["preview", "owner", "sha256", "source_format", "width", "height", "created_at",
                       "labelled_by", "labelled_at"]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["preview", "owner", "created_at", "width", "height", "source_format", "sha256"]}),
        ("Clinical details", {"fields": ["age", "sex", "site", "lesion_id"]}),
        (
            "Confirmed diagnosis",
            {"fields": ["diagnosis", "diagnosis_method", "diagnosis_note", "labelled_by", "labelled_at"]},
        ),  # fmt: skip
    ]
    inlines = [PredictionInline]
    actions = ["label_selected", "rerun_selected"]
    list_per_page = 50

    def get_queryset(self, request):
        return with_latest_prediction(super().get_queryset(request).select_related("owner"))

    @admin.display(description="Image")
    def thumbnail(self, image):
        url = reverse("classifier:image-file", args=[image.pk])
        return format_html('<img src="{}" alt="" style="height:48px;border-radius:3px">', url)

    @admin.display(description="Image")
    def preview(self, image):
        url = reverse("classifier:image-file", args=[image.pk])
        return format_html('<img src="{}" alt="" style="max-width:320px">', url)

    @admin.display(description="Model says", ordering="predicted_confidence")
    def predicted(self, image):
        if image.predicted_class is None:
            return "—"
        return f"{FULL_NAMES[image.predicted_class]} ({image.predicted_confidence:.0%})"

    @admin.display(description="Label", ordering="diagnosis")
    def label_status(self, image):
        if not image.diagnosis:
            return "unlabelled"
        return f"{image.diagnosis} ({image.get_diagnosis_method_display()})"

    def save_model(self, request, image, form, change):
        # Whoever changes the diagnosis is recorded as its labeller.
        if "diagnosis" in form.changed_data or "diagnosis_method" in form.changed_data:
            image.labelled_by, image.labelled_at = request.user, timezone.now()
        super().save_model(request, image, form, change)

    @admin.action(description="Label the selected images with a confirmed diagnosis…")
    def label_selected(self, request, queryset):
        form = LabelForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            count = label_images(
                queryset.model.objects.filter(pk__in=queryset.values("pk")),
                form.cleaned_data["diagnosis"],
                form.cleaned_data["method"],
                form.cleaned_data["note"],
                request.user,
            )
            self.message_user(request, f"Labelled {count} images.", messages.SUCCESS)
            return None
        count = queryset.count()
        title = f"Label {count} image{'' if count == 1 else 's'}"
        context = {**self.admin_site.each_context(request), "form": form, "images": queryset, "title": title}
        return TemplateResponse(request, "admin/classifier/label_images.html", context)

    @admin.action(description="Re-run the selected images with the active model version")
    def rerun_selected(self, request, queryset):
        created = rerun_predictions(list(queryset))
        self.message_user(request, f"Queued {len(created)} new predictions.", messages.SUCCESS)


admin.site.register(LesionImage, LesionImageAdmin)


@admin.register(UnlabelledImage)
class LabellingQueueAdmin(LesionImageAdmin):
    """Unlabelled images, least certain prediction first: where a label helps the model most."""

    list_filter = ["created_at"]

    def get_queryset(self, request):
        return labelling_queue(UnlabelledImage.objects.select_related("owner"))

    def get_ordering(self, request):
        # The changelist replaces a queryset's order with this one (the model's
        # newest-first when it is empty), so the queue's order must be given here.
        return list(QUEUE_ORDER)

    def has_add_permission(self, request):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Versions side by side by their held-out metrics; activating one (or rolling back) is one click."""

    list_display = ["name", "is_active", "balanced_accuracy", "macro_f1", "melanoma_recall", "calibration_error",
                    "held_out_images", "malignant_threshold", "registered_at", "activate_button"]  # fmt: skip
    readonly_fields = ["name", "directory", "card", "malignant_threshold", "is_active", "registered_at", "activated_at"]

    def has_add_permission(self, request):
        return False  # versions come from MODEL_ROOT and from training jobs

    def _test(self, version) -> dict:
        return version.metrics.get("test") or {}

    def _number(self, value):
        return "—" if value is None else f"{value:.3f}"

    @admin.display(description="Balanced acc.")
    def balanced_accuracy(self, version):
        return self._number(self._test(version).get("balanced_accuracy"))

    @admin.display(description="Macro F1")
    def macro_f1(self, version):
        return self._number(self._test(version).get("macro_f1"))

    @admin.display(description="Melanoma recall")
    def melanoma_recall(self, version):
        return self._number(self._test(version).get("melanoma_recall_at_threshold"))

    @admin.display(description="ECE")
    def calibration_error(self, version):
        return self._number(self._test(version).get("ece"))

    @admin.display(description="Test images")
    def held_out_images(self, version):
        return self._test(version).get("n_images", "—")

    @admin.display(description="")
    def activate_button(self, version):
        if version.is_active:
            return "serving"
        url = reverse("admin:classifier_modelversion_activate", args=[version.pk])
        return format_html(
            '<button type="submit" form="activate-version" formaction="{}" class="button">Activate</button>', url
        )

    def get_urls(self):
        activate = self.admin_site.admin_view(require_POST(self.activate_view))
        return [path("<int:pk>/activate/", activate, name="classifier_modelversion_activate"), *super().get_urls()]

    def activate_view(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        version.activate()
        self.message_user(request, f"{version.name} now serves new predictions.", messages.SUCCESS)
        return redirect("admin:classifier_modelversion_changelist")


class StartJobForm(forms.Form):
    start_from = forms.ChoiceField(choices=TrainingJob.StartFrom.choices, initial=TrainingJob.StartFrom.ACTIVE)
    epochs = forms.IntegerField(min_value=1, max_value=settings.TRAINING_MAX_EPOCHS, initial=10)


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "progress_bar", "epoch", "requested_by", "result_version", "gate_result",
                    "created_at", "finished_at"]  # fmt: skip
    list_filter = ["status"]
    readonly_fields = [field.name for field in TrainingJob._meta.fields]

    def has_add_permission(self, request):
        return False  # started from the "Start a retraining job" page, which validates and enqueues

    @admin.display(description="Progress")
    def progress_bar(self, job):
        return format_html('<progress max="100" value="{}"></progress> {}%', job.progress, round(job.progress))

    @admin.display(description="Gate")
    def gate_result(self, job):
        if not job.gate:
            return "—"
        return "passed, activated" if job.gate.get("activated") else "not passed: candidate"

    def get_urls(self):
        start = self.admin_site.admin_view(self.start_view)
        cancel = self.admin_site.admin_view(require_POST(self.cancel_view))
        return [
            path("start/", start, name="classifier_trainingjob_start"),
            path("<int:pk>/cancel/", cancel, name="classifier_trainingjob_cancel"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "start_url": reverse("admin:classifier_trainingjob_start")}
        return super().changelist_view(request, extra_context)

    def start_view(self, request):
        form = StartJobForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = start_training_job(request.user, **form.cleaned_data)
            except JobConflict as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Training job {job.pk} queued.", messages.SUCCESS)
                return redirect("admin:classifier_trainingjob_change", job.pk)
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Start a retraining job",
            "labelled": LesionImage.objects.exclude(diagnosis="").count(),
            "active": ModelVersion.active(),
            "max_drop": settings.TRAINING_GATE_MAX_BALANCED_ACCURACY_DROP,
            "min_mel_recall": settings.TRAINING_GATE_MIN_MELANOMA_RECALL,
        }
        return TemplateResponse(request, "admin/classifier/start_training_job.html", context)

    def cancel_view(self, request, pk: int):
        job = get_object_or_404(TrainingJob, pk=pk)
        job.request_cancel()
        self.message_user(request, f"Cancellation of job {job.pk} requested.", messages.WARNING)
        return redirect("admin:classifier_trainingjob_change", job.pk)


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "status", "top_class", "top_probability", "is_malignant", "model_version"]
    list_filter = ["status", "top_class", "is_malignant", "model_version"]
    readonly_fields = [field.name for field in Prediction._meta.fields]
    actions = ["rerun_selected"]

    @admin.action(description="Re-run the selected predictions' images with the active model version")
    def rerun_selected(self, request, queryset):
        created = rerun_predictions(images_of(queryset))
        self.message_user(request, f"Queued {len(created)} new predictions.", messages.SUCCESS)


admin.site.register(UploadBatch)
admin.site.site_header = "lesionsite administration"
