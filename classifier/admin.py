"""The admin side: labelling images (one by one, in bulk, from a queue) and model versions."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from classifier.labelling import label_images, labelling_queue, with_latest_prediction
from classifier.models import (
    CLASS_CHOICES,
    METHOD_CHOICES,
    LesionImage,
    ModelVersion,
    Prediction,
    UnlabelledImage,
    UploadBatch,
)
from training.classes import FULL_NAMES


class LabelForm(forms.Form):
    diagnosis = forms.ChoiceField(choices=CLASS_CHOICES)
    method = forms.ChoiceField(choices=METHOD_CHOICES, label="Confirmed by")
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
    actions = ["label_selected"]
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
        context = {**self.admin_site.each_context(request), "form": form, "images": queryset, "title": "Label images"}
        return TemplateResponse(request, "admin/classifier/label_images.html", context)


admin.site.register(LesionImage, LesionImageAdmin)


@admin.register(UnlabelledImage)
class LabellingQueueAdmin(LesionImageAdmin):
    """Unlabelled images, least certain prediction first: where a label helps the model most."""

    list_filter = ["created_at"]

    def get_queryset(self, request):
        return labelling_queue(UnlabelledImage.objects.select_related("owner"))

    def get_ordering(self, request):
        return []  # keep the queue's own order

    def has_add_permission(self, request):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "malignant_threshold", "registered_at", "activated_at"]
    readonly_fields = ["name", "directory", "card", "registered_at", "activated_at"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "status", "top_class", "top_probability", "is_malignant", "model_version"]
    list_filter = ["status", "top_class", "is_malignant", "model_version"]
    readonly_fields = [field.name for field in Prediction._meta.fields]


admin.site.register(UploadBatch)
admin.site.site_header = "lesionsite administration"
