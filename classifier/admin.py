from __future__ import annotations

from django.contrib import admin

from classifier.models import LesionImage, ModelVersion, Prediction, UploadBatch


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "malignant_threshold", "registered_at", "activated_at"]
    readonly_fields = ["name", "directory", "card", "registered_at", "activated_at"]


class PredictionInline(admin.TabularInline):
    model = Prediction
    extra = 0
    fields = ["status", "top_class", "top_probability", "malignant_probability", "model_version", "created_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(LesionImage)
class LesionImageAdmin(admin.ModelAdmin):
    list_display = ["id", "original_filename", "owner", "width", "height", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["original_filename", "sha256", "owner__username"]
    readonly_fields = ["sha256", "file", "source_format", "width", "height", "created_at"]
    inlines = [PredictionInline]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "status", "top_class", "top_probability", "is_malignant", "model_version"]
    list_filter = ["status", "top_class", "is_malignant", "model_version"]
    readonly_fields = [field.name for field in Prediction._meta.fields]


admin.site.register(UploadBatch)
admin.site.site_header = "lesionsite administration"
