"""The admin side: labelling images (one by one, in bulk, from a queue), model versions, clinics and
their members, and the audit log (read-only)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from classifier.audit import Action, AuditEvent, audit, audit_many
from classifier.lib.imaging import THUMBNAIL_CONTENT_TYPE
from classifier.lib.intervals import card_intervals
from classifier.models import (
    CLASS_CHOICES,
    METHOD_CHOICES,
    ActivationNeedsConfirmation,
    Clinic,
    JobConflict,
    LesionImage,
    LesionImageQuerySet,
    Membership,
    ModelActivation,
    ModelVersion,
    Prediction,
    TrainingJob,
    UnlabelledImage,
    UploadBatch,
    WebhookDelivery,
    WebhookEndpoint,
)
from classifier.permissions import START_JOBS
from classifier.tokens import ApiToken
from classifier.training_data import PART_NAMES, PARTS, labelled_counts, minimum_per_class
from classifier.views import open_stored_image, open_thumbnail, private_file
from training.classes import CLASSES, FULL_NAMES


class LabelForm(forms.Form):
    # A blank first choice, required: nothing is pre-selected, so one click cannot
    # label a whole selection with whatever happened to be listed first.
    diagnosis = forms.ChoiceField(choices=[("", "— choose the confirmed diagnosis —"), *CLASS_CHOICES])
    method = forms.ChoiceField(choices=[("", "— choose how it was confirmed —"), *METHOD_CHOICES], label="Confirmed by")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


def fraction(value: float | None) -> str:
    """0.961390495300293 → '96.1 %'."""
    return "—" if value is None else f"{value:.1%}".replace("%", " %")


def number(value: float | None) -> str:
    """0.961390495300293 → '0.961'."""
    return "—" if value is None else f"{value:.3f}"


def with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    """'0.696 (0.646–0.746)': the figure and its 95 % confidence interval."""
    if value is None:
        return "—"
    return number(value) if interval is None else f"{number(value)} ({interval[0]:.3f}–{interval[1]:.3f})"


class AdminTables(admin.ModelAdmin):
    """Every admin page here: names and file names are never broken at their hyphens."""

    class Media:
        css = {"all": ["admin-tables.css"]}


class PredictionInline(admin.TabularInline):
    """An image's readings, read-only: predictions are made by the workers, never added here."""

    model = Prediction
    extra = 0
    fields = ["status", "top_class", "confidence", "malignancy_score", "model_version", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # no "Add another Prediction": re-run the image instead

    @admin.display(description="Confidence")
    def confidence(self, prediction):
        return fraction(prediction.top_probability)

    @admin.display(description="Malignancy score")
    def malignancy_score(self, prediction):
        return number(prediction.malignant_probability)


SHOW_NAME = "show_uploaded_name"


class LesionImageAdmin(AdminTables):
    # An image is shown by its stored, content-addressed name: the name it was uploaded under may be a
    # patient's (clinics are asked not to, but the name is kept), so the change page shows it only when
    # asked, and that is audited. Searching by it still finds the image.
    list_display = ["thumbnail", "stored_name", "clinic", "owner", "predicted", "label_status", "created_at"]
    list_display_links = ["stored_name"]
    change_form_template = "admin/classifier/lesionimage/change_form.html"
    list_filter = ["diagnosis", "diagnosis_method", "created_at"]
    search_fields = ["original_filename", "sha256", "owner__username", "source_lesion_id"]
    readonly_fields = ["preview", "clinic", "lesion", "owner", "sha256", "source_format", "width", "height",
                       "created_at", "taken_at", "labelled_by", "labelled_at"]  # fmt: skip
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "preview",
                    "clinic",
                    "lesion",
                    "owner",
                    "created_at",
                    "taken_at",
                    "width",
                    "height",
                    "source_format",
                    "sha256",
                ]
            },
        ),  # fmt: skip
        ("Clinical details", {"fields": ["age", "sex", "site", "source_lesion_id"]}),
        (
            "Confirmed diagnosis",
            {"fields": ["diagnosis", "diagnosis_method", "diagnosis_note", "labelled_by", "labelled_at"]},
        ),  # fmt: skip
    ]
    inlines = [PredictionInline]
    actions = ["label_selected", "rerun_selected"]
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner", "clinic", "latest_prediction")

    # The admin serves the pictures itself: the site's image URLs answer only members of the image's
    # clinic, and labelling needs every clinic's. Each file served is audited as on the site.
    def get_urls(self):
        file = self.admin_site.admin_view(require_GET(self.file_view))
        thumbnail = self.admin_site.admin_view(require_GET(self.thumbnail_view))
        name = f"{self.opts.app_label}_{self.opts.model_name}"  # the labelling queue has its own
        return [
            path("<int:pk>/file/", file, name=f"{name}_file"),
            path("<int:pk>/thumbnail/", thumbnail, name=f"{name}_thumbnail"),
            *super().get_urls(),
        ]

    def file_view(self, request, pk: int):
        self._require_view(request)
        image = get_object_or_404(LesionImage.objects.select_related("lesion"), pk=pk)
        handle = open_stored_image(image)
        audit(request, Action.DOWNLOADED_FILE, image, detail={"file": "image", "admin": True})
        return private_file(handle, image.stored_content_type)

    def thumbnail_view(self, request, pk: int):
        self._require_view(request)
        image = get_object_or_404(LesionImage.objects.select_related("lesion"), pk=pk)
        handle = open_thumbnail(image)
        audit(request, Action.DOWNLOADED_FILE, image, detail={"file": "thumbnail", "admin": True})
        return private_file(handle, THUMBNAIL_CONTENT_TYPE)

    @admin.display(description="Stored file", ordering="sha256")
    def stored_name(self, image):
        return image.file.name

    def response_change(self, request, obj):
        request.lesionsite_named_image = obj  # per request: the ModelAdmin is shared between threads
        return super().response_change(request, obj)

    def response_delete(self, request, obj_display, obj_id):
        return super().response_delete(request, f"Image {obj_id}", obj_id)

    def message_user(self, request, message, *args, **kwargs):
        # "The lesion image “<its uploaded name>” was changed": by its number instead.
        image = getattr(request, "lesionsite_named_image", None)
        if image is not None and str(image):
            # Django's message is already escaped HTML; only its escaped copy of the name is replaced.
            message = mark_safe(str(message).replace(str(escape(str(image))), f"Image {image.pk}"))  # nosec B308 B703
        super().message_user(request, message, *args, **kwargs)

    def action_checkbox(self, image):
        # Django labels each row's checkbox with str(image): the uploaded name.
        attrs = {"class": "action-select", "aria-label": f"Select image {image.pk} for an action"}
        return forms.CheckboxInput(attrs, lambda value: False).render(helpers.ACTION_CHECKBOX_NAME, str(image.pk))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"subtitle": f"Image {object_id}", **(extra_context or {})}
        if request.method == "GET" and request.GET.get(SHOW_NAME) == "1":
            image = self.get_object(request, object_id)
            if image is not None and self.has_view_permission(request, image):
                audit(request, Action.VIEWED_IMAGE, image, detail={"admin": True, "uploaded_name": True})
                extra["uploaded_name"] = image.original_filename or "(none was given)"
        return super().change_view(request, object_id, form_url, {**extra, "show_name_parameter": SHOW_NAME})

    def _require_view(self, request) -> None:
        # admin_view() lets in any staff user: the pictures are for those who may view the images.
        if not self.has_view_permission(request):
            raise PermissionDenied

    @admin.display(description="Image")
    def thumbnail(self, image):
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_thumbnail", args=[image.pk])
        return format_html('<img src="{}" alt="" style="height:48px;border-radius:3px" loading="lazy">', url)

    @admin.display(description="Image")
    def preview(self, image):
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_file", args=[image.pk])
        return format_html('<img src="{}" alt="" style="max-width:320px">', url)

    @admin.display(description="Model says", ordering="latest_prediction__top_probability")
    def predicted(self, image):
        reading = image.latest_prediction
        if reading is None or not reading.has_reading:
            return "—" if reading is None or reading.status != "done" else "not assessed (not dermatoscopic)"
        return f"{FULL_NAMES[reading.top_class]} ({reading.top_probability:.0%})"

    @admin.display(description="Label", ordering="diagnosis")
    def label_status(self, image):
        if not image.diagnosis:
            return "unlabelled"
        return f"{image.diagnosis} ({image.get_diagnosis_method_display()})"

    def save_model(self, request, image, form, change):
        labelled = {"diagnosis", "diagnosis_method", "diagnosis_note"} & set(form.changed_data)
        if labelled and image.diagnosis and image.diagnosis_method:
            # Through the model's rule: an image of a lesion labels the lesion and all its images;
            # whoever changes the diagnosis is recorded as its labeller.
            label = (image.diagnosis, image.diagnosis_method, image.diagnosis_note)
            with transaction.atomic():
                super().save_model(request, image, form, change)
                image.set_label(*label, by=request.user)
                audit(request, Action.LABELLED, image.lesion or image, detail={"diagnosis": label[0]})
            return
        if labelled and image.lesion_id is not None and not image.diagnosis:
            # A label taken off an image of a lesion is taken off the lesion: its images never disagree.
            with transaction.atomic():
                super().save_model(request, image, form, change)
                image.lesion.remove_label()
            return
        if labelled:
            image.labelled_by, image.labelled_at = request.user, timezone.now()
        super().save_model(request, image, form, change)

    # Actions are offered to whoever may view the list unless they name a permission.
    @admin.action(description="Label the selected images with a confirmed diagnosis…", permissions=["change"])
    def label_selected(self, request, queryset):
        form = LabelForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            chosen = LesionImage.objects.filter(pk__in=queryset.values("pk")).select_related("lesion")
            with transaction.atomic():
                count = chosen.label(
                    form.cleaned_data["diagnosis"],
                    form.cleaned_data["method"],
                    form.cleaned_data["note"],
                    request.user,
                )
                audit_many(request, Action.LABELLED, list(chosen), detail={"diagnosis": form.cleaned_data["diagnosis"]})
            self.message_user(request, f"Labelled {count} images.", messages.SUCCESS)
            return None
        count = queryset.count()
        title = f"Label {count} image{'' if count == 1 else 's'}"
        context = {**self.admin_site.each_context(request), "form": form, "images": queryset, "title": title}
        return TemplateResponse(request, "admin/classifier/label_images.html", context)

    @admin.action(description="Re-run the selected images with the active model version", permissions=["change"])
    def rerun_selected(self, request, queryset):
        created = queryset.rerun()
        self.message_user(request, f"Queued {len(created)} new predictions.", messages.SUCCESS)


admin.site.register(LesionImage, LesionImageAdmin)


@admin.register(UnlabelledImage)
class LabellingQueueAdmin(LesionImageAdmin):
    """Unlabelled images, least certain prediction first: where a label helps the model most."""

    list_filter = ["created_at"]

    def get_queryset(self, request):
        return UnlabelledImage.objects.select_related("owner", "clinic").labelling_queue()

    def get_ordering(self, request):
        # The changelist replaces a queryset's order with this one (the model's
        # newest-first when it is empty), so the queue's order must be given here.
        return list(LesionImageQuerySet.QUEUE_ORDER)

    def has_add_permission(self, request):
        return False


INTERVALS_HELP = (
    "Figures on each version's held-out test images, with their 95 % confidence intervals in brackets: "
    "Wilson score intervals for recalls (melanoma recall, each class's recall), and for balanced accuracy "
    "a normal approximation of the mean of the per-class recalls. A version's training job compared it with "
    "the version active then on the same images; shipped versions were measured on HAM10000's test split."
)


def figures_of(metrics: dict) -> dict:
    """One split's metrics as the figures table shows them: headline rows and one row per class."""
    intervals = card_intervals(metrics)
    per_class = metrics.get("per_class") or {}
    headline = [
        ("Balanced accuracy", with_interval(metrics.get("balanced_accuracy"), intervals["balanced_accuracy"])),
        ("Macro F1", number(metrics.get("macro_f1"))),
        ("Accuracy", number(metrics.get("accuracy"))),
        (
            "Melanoma recall at the threshold",
            with_interval(metrics.get("melanoma_recall_at_threshold"), intervals["melanoma_recall_at_threshold"]),
        ),
        ("Malignant sensitivity at the threshold", number(metrics.get("malignant_sensitivity_at_threshold"))),
        ("Malignant specificity at the threshold", number(metrics.get("malignant_specificity_at_threshold"))),
        ("Malignancy threshold", number(metrics.get("malignant_threshold"))),
        ("Expected calibration error", number(metrics.get("ece"))),
    ]
    classes = [
        (code, FULL_NAMES.get(code, code), stats.get("support"),
         with_interval(stats.get("recall"), intervals.get(f"recall_{code}")), number(stats.get("precision")))
        for code, stats in ((code, per_class[code]) for code in CLASSES if code in per_class)
    ]  # fmt: skip
    return {"n_images": metrics.get("n_images"), "headline": headline, "classes": classes}


def gate_table(gate: dict | None, job: TrainingJob | None = None) -> str:
    """The quality gate's decision as a table: each check, whether it passed, the figures."""
    if not gate:
        return render_to_string("admin/classifier/includes/gate.html", {"never_gated": True})
    checks = gate.get("checks")
    if checks is None:  # decisions recorded before the gate named its checks
        checks = [{"name": "", "result": "", "detail": reason} for reason in gate.get("reasons", [])]
    if gate.get("refused"):
        verdict = "refused to judge: too few images of some class"
    else:
        verdict = "passed" if gate.get("passed") else "not passed"
    activated = gate.get("activated")
    context = {"checks": checks, "verdict": verdict, "activated": activated, "job": job}
    return render_to_string("admin/classifier/includes/gate.html", context)


def gate_status(gate: dict | None) -> str:
    if not gate:
        return "never gated"
    if gate.get("refused"):
        return "refused to judge"
    return "passed" if gate.get("passed") else "failed"


class ModelActivationInline(admin.TabularInline):
    """Every time this version was put in service: who, when, how, and any gate it overrode."""

    model = ModelActivation
    fk_name = "version"
    extra = 0
    fields = ["activated_at", "activated_by", "via", "replaced", "overrode_gate", "reasons_list"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = "activations"

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Reasons")
    def reasons_list(self, activation):
        if not activation.reasons:
            return "—"
        # The separator is a constant; each reason is escaped by format_html_join.
        return format_html_join(mark_safe("<br>"), "{}", ((reason,) for reason in activation.reasons))  # nosec B308


@admin.register(ModelVersion)
class ModelVersionAdmin(AdminTables):
    """Versions side by side by their held-out figures; activating one (or rolling back) is one click,
    with a confirmation page when the quality gate did not pass it."""

    list_display = ["name", "gate_result", "balanced_accuracy", "melanoma_recall", "macro_f1", "calibration_error",
                    "held_out_images", "operating_point", "registered_at", "activate_button"]  # fmt: skip
    fields = ["name", "is_active", "root", "folder", "malignancy_score", "operating_points", "registered_at",
              "activated_at", "test_figures", "validation_figures", "gate"]  # fmt: skip
    readonly_fields = fields
    inlines = [ModelActivationInline]

    def has_add_permission(self, request):
        return False  # versions come from MODEL_ROOT, TRAINED_MODEL_ROOT and training jobs

    def _test(self, version) -> dict:
        return version.metrics.get("test") or {}

    @admin.display(description="Quality gate")
    def gate_result(self, version):
        job = version.gated_by()
        return gate_status(job.gate if job else None)

    @admin.display(description="Balanced acc. (95 % CI)")
    def balanced_accuracy(self, version):
        test = self._test(version)
        return with_interval(test.get("balanced_accuracy"), card_intervals(test)["balanced_accuracy"])

    @admin.display(description="Melanoma recall (95 % CI)")
    def melanoma_recall(self, version):
        test = self._test(version)
        key = "melanoma_recall_at_threshold"
        return with_interval(test.get(key), card_intervals(test)[key])

    @admin.display(description="Macro F1")
    def macro_f1(self, version):
        return number(self._test(version).get("macro_f1"))

    @admin.display(description="ECE")
    def calibration_error(self, version):
        return number(self._test(version).get("ece"))

    @admin.display(description="Held-out images")
    def held_out_images(self, version):
        test = self._test(version)
        per_class = test.get("per_class") or {}
        if not per_class:
            return test.get("n_images", "—")
        # In the classes' order: PostgreSQL's jsonb keeps no key order.
        counts = ", ".join(f"{per_class[code].get('support', 0)} {code}" for code in CLASSES if code in per_class)
        return format_html('{}<br><span class="per-class">{}</span>', test.get("n_images", "—"), counts)

    @admin.display(description="Malignancy flag")
    def operating_point(self, version):
        figures = version.flag_figures(version.malignant_threshold)
        target = "card's own" if version.target_sensitivity is None else f"{version.target_sensitivity:.0%} target"
        if figures is None:
            return f"≥ {fraction(version.malignant_threshold)} ({target})"
        return format_html(
            "≥ {} ({})<br><span class=\"per-class\">catches {} of malignant, flags {} of benign ({})</span>",
            fraction(version.malignant_threshold), target, fraction(figures.sensitivity),
            fraction(figures.false_alarm_rate), figures.measured_on,
        )  # fmt: skip

    @admin.display(description="Malignancy score")
    def malignancy_score(self, version):
        """What the flag's threshold applies to: versions read the same probabilities differently."""
        return version.malignancy_score.description.capitalize() + "."

    @admin.display(description="Malignancy flag: operating point")
    def operating_points(self, version):
        rows = [
            {
                "value": "card",
                "label": "The card's own threshold",
                "threshold": fraction(version.threshold_for(None)),
                "chosen": version.target_sensitivity is None,
                **_point_figures(version.flag_figures(version.threshold_for(None)), None),
            }
        ]
        for point in version.operating_points:
            rows.append(
                {
                    "value": str(point["target_sensitivity"]),
                    "label": f"{point['target_sensitivity']:.0%} of malignant lesions",
                    "threshold": fraction(point["threshold"]),
                    "chosen": version.target_sensitivity is not None
                    and abs(point["target_sensitivity"] - version.target_sensitivity) < 1e-9,
                    **_point_figures(None, point),
                }
            )
        context = {"rows": rows, "chosen_by": version.operating_point_chosen_by,
                   "chosen_at": version.operating_point_chosen_at}  # fmt: skip
        return render_to_string("admin/classifier/includes/operating_points.html", context)

    @admin.display(description="Held-out (test) figures")
    def test_figures(self, version):
        return self._figures(self._test(version), INTERVALS_HELP)

    @admin.display(description="Validation figures")
    def validation_figures(self, version):
        return self._figures(version.metrics.get("val") or {}, "Where the temperature and the threshold were chosen.")

    def _figures(self, metrics: dict, help_text: str):
        if not metrics:
            return "—"
        context = {"figures": figures_of(metrics), "help": help_text}
        return render_to_string("admin/classifier/includes/figures.html", context)

    @admin.display(description="Quality gate")
    def gate(self, version):
        job = version.gated_by()
        return gate_table(job.gate if job else None, job)

    @admin.display(description="")
    def activate_button(self, version):
        if version.is_active:
            return "serving"
        url = reverse("admin:classifier_modelversion_activate", args=[version.pk])
        return format_html(
            '<button type="submit" form="activate-version" formaction="{}" class="button">Activate</button>', url
        )

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "intervals_help": INTERVALS_HELP})

    def get_urls(self):
        activate = self.admin_site.admin_view(require_POST(self.activate_view))
        operating_point = self.admin_site.admin_view(require_POST(self.operating_point_view))
        return [
            path("<int:pk>/activate/", activate, name="classifier_modelversion_activate"),
            path("<int:pk>/operating-point/", operating_point, name="classifier_modelversion_operating_point"),
            *super().get_urls(),
        ]

    def _changeable(self, request, pk: int) -> ModelVersion:
        # admin_view() lets in any staff user: serving a version is for those who may change versions.
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        return version

    def operating_point_view(self, request, pk: int):
        version = self._changeable(request, pk)
        chosen = request.POST.get("target_sensitivity", "")
        try:
            target = None if chosen == "card" else float(chosen)
            version.choose_operating_point(target, by=request.user)
        except ValueError:
            self.message_user(request, f"Choose one of {version.name}'s operating points.", messages.ERROR)
        else:
            self.message_user(
                request,
                f"{version.name} now flags at ≥ {fraction(version.malignant_threshold)} for new predictions.",
                messages.SUCCESS,
            )
        return redirect("admin:classifier_modelversion_change", version.pk)

    def activate_view(self, request, pk: int):
        """Activate at once, or first show why the gate did not pass it and ask (confirm=yes)."""
        version = self._changeable(request, pk)
        confirmed = request.POST.get("confirm") == "yes"
        try:
            version.activate_confirmed(request.user, via=ModelActivation.Via.ADMIN, confirmed=confirmed)
        except ActivationNeedsConfirmation as exc:
            context = {
                **self.admin_site.each_context(request),
                "title": f"Activate {version.name}?",
                "version": version,
                "reasons": exc.reasons,
                "active": ModelVersion.active(),
                "opts": ModelVersion._meta,
            }
            return TemplateResponse(request, "admin/classifier/modelversion/confirm_activation.html", context)
        overrode = " (the quality gate's objections were overridden and recorded)" if confirmed else ""
        self.message_user(request, f"{version.name} now serves new predictions{overrode}.", messages.SUCCESS)
        return redirect("admin:classifier_modelversion_changelist")


def _point_figures(figures, point: dict | None) -> dict:
    """A row's test and validation figures, from FlagFigures or an operating point of the card."""
    if point is not None:
        test, val = point.get("test"), point.get("val") or {}
        caught = fraction(test["sensitivity"]) if test else "—"
        alarms = fraction(1 - test["specificity"]) if test else "—"
        validation = f"{fraction(val.get('sensitivity'))} / {fraction(1 - val['specificity'])}" if val else "—"
        return {"test_caught": caught, "test_false_alarms": alarms, "val": validation}
    if figures is None or figures.measured_on != "test":
        return {"test_caught": "—", "test_false_alarms": "—", "val": "—"}
    return {"test_caught": fraction(figures.sensitivity), "test_false_alarms": fraction(figures.false_alarm_rate),
            "val": "—"}  # fmt: skip


class StartJobForm(forms.Form):
    start_from = forms.ChoiceField(choices=TrainingJob.StartFrom.choices, initial=TrainingJob.StartFrom.ACTIVE)
    epochs = forms.IntegerField(min_value=1, max_value=settings.TRAINING_MAX_EPOCHS, initial=10)

    def __init__(self, *args, active: ModelVersion | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        name = active.name if active else "none is active"
        self.fields["start_from"].choices = [
            (TrainingJob.StartFrom.ACTIVE, f"{TrainingJob.StartFrom.ACTIVE.label} ({name})"),
            (TrainingJob.StartFrom.IMAGENET, TrainingJob.StartFrom.IMAGENET.label),
        ]


@admin.register(TrainingJob)
class TrainingJobAdmin(AdminTables):
    list_display = ["__str__", "status", "progress_bar", "epoch", "requested_by", "result_version", "gate_result",
                    "created_at", "finished_at"]  # fmt: skip
    list_filter = ["status"]
    fields = ["status", "start_from", "epochs", "epoch", "progress_bar", "requested_by", "base_version",
              "result_version", "figures", "gate_decision", "error", "log_tail", "cancel_requested", "task_id",
              "created_at", "started_at", "finished_at"]  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # started from the "Start a retraining job" page, which validates and enqueues

    @admin.display(description="Progress")
    def progress_bar(self, job):
        return format_html('<progress max="100" value="{}"></progress> {}%', job.progress, round(job.progress))

    @admin.display(description="Gate")
    def gate_result(self, job):
        if not job.gate:
            return "—"
        if job.gate.get("activated"):
            return "passed, activated"
        return "refused to judge: candidate" if job.gate.get("refused") else "not passed: candidate"

    @admin.display(description="Quality gate")
    def gate_decision(self, job):
        return gate_table(job.gate) if job.gate else "—"

    @admin.display(description="Metrics")
    def figures(self, job):
        metrics = job.metrics or {}
        history = metrics.get("history") or []
        columns = [key for key in ("epoch", "loss", "val_loss", "val_balanced_accuracy", "seconds")
                   if any(key in entry for entry in history)]  # fmt: skip
        epochs = [
            [entry.get(key) if key == "epoch" else self._cell(entry.get(key)) for key in columns] for entry in history
        ]
        test, incumbent = metrics.get("test"), metrics.get("incumbent_test")
        compared = []
        if test:
            keys = [("n_images", "Held-out images"), ("balanced_accuracy", "Balanced accuracy"),
                    ("macro_f1", "Macro F1"), ("melanoma_recall_at_threshold", "Melanoma recall at the threshold"),
                    ("accuracy", "Accuracy")]  # fmt: skip
            compared = [
                (label, self._cell(test.get(key)), self._cell((incumbent or {}).get(key)) if incumbent else "—")
                for key, label in keys
            ]
        if not epochs and not compared:
            return "—"
        context = {"columns": [column.replace("_", " ") for column in columns], "epochs": epochs,
                   "compared": compared, "base": job.base_version}  # fmt: skip
        return render_to_string("admin/classifier/includes/job_metrics.html", context)

    @staticmethod
    def _cell(value):
        return value if isinstance(value, int) or value is None else number(value)

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
        if not request.user.has_perm(START_JOBS):  # has_add_permission is False: jobs start only here
            raise PermissionDenied
        active = ModelVersion.active()
        form = StartJobForm(request.POST or None, active=active)
        if request.method == "POST" and form.is_valid():
            try:
                job = TrainingJob.start(request.user, **form.cleaned_data)
            except JobConflict as exc:
                self.message_user(request, str(exc), messages.ERROR)
            except ValueError as exc:  # not enough labelled images (the job's own rule), no active version
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Training job {job.pk} queued.", messages.SUCCESS)
                return redirect("admin:classifier_trainingjob_change", job.pk)
        counts, minimum = labelled_counts(), minimum_per_class()
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Start a retraining job",
            "labelled": sum(sum(per_class.values()) for per_class in counts.values()),
            "counts": [
                (code, [(counts[part][code], counts[part][code] < minimum[part]) for part in PARTS]) for code in CLASSES
            ],
            "parts": [(PART_NAMES[part], minimum[part]) for part in PARTS],
            "active": active,
            "max_drop": settings.TRAINING_GATE_MAX_BALANCED_ACCURACY_DROP,
            "min_mel_recall": settings.TRAINING_GATE_MIN_MELANOMA_RECALL,
            "min_held_out": settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS,
        }
        return TemplateResponse(request, "admin/classifier/start_training_job.html", context)

    def cancel_view(self, request, pk: int):
        job = get_object_or_404(TrainingJob, pk=pk)
        if not self.has_change_permission(request, job):
            raise PermissionDenied
        job.request_cancel()
        self.message_user(request, f"Cancellation of job {job.pk} requested.", messages.WARNING)
        return redirect("admin:classifier_trainingjob_change", job.pk)


@admin.register(Prediction)
class PredictionAdmin(AdminTables):
    list_display = ["id", "image_ref", "status", "top_class", "confidence", "is_malignant", "model_version"]
    list_filter = ["status", "top_class", "is_malignant", "model_version"]
    fields = ["image_ref", "model_version", "status", "top_class", "confidence", "probabilities_table",
              "malignancy_score", "is_malignant", "is_uncertain", "ood_score_display", "is_out_of_distribution",
              "explanation_summary", "error", "task_id", "attempts", "created_at", "started_at", "finished_at",
              "inference_time"]  # fmt: skip
    readonly_fields = fields
    actions = ["rerun_selected"]

    def has_add_permission(self, request):
        return False  # predictions are made by the workers: upload an image or re-run one

    @admin.display(description="Confidence", ordering="top_probability")
    def confidence(self, prediction):
        return fraction(prediction.top_probability)

    @admin.display(description="Image", ordering="image")
    def image_ref(self, prediction):
        # By its number, never the name it was uploaded under (LesionImageAdmin shows that when asked).
        url = reverse("admin:classifier_lesionimage_change", args=[prediction.image_id])
        return format_html('<a href="{}">Image {}</a>', url, prediction.image_id)

    @admin.display(description="Probabilities")
    def probabilities_table(self, prediction):
        if not prediction.probabilities:
            return "—"
        rows = sorted(prediction.probabilities.items(), key=lambda item: -item[1])
        return render_to_string(
            "admin/classifier/includes/probabilities.html",
            {"rows": [(FULL_NAMES.get(code, code), code, fraction(p)) for code, p in rows]},
        )

    @admin.display(description="Malignancy score")
    def malignancy_score(self, prediction):
        return number(prediction.malignant_probability)

    @admin.display(description="Out-of-distribution score")
    def ood_score_display(self, prediction):
        return number(prediction.ood_score)

    @admin.display(description="Heatmap")
    def explanation_summary(self, prediction):
        grid = (prediction.explanation or {}).get("grid")
        if not grid:
            return "—"
        method = {"layer-cam": "Layer-CAM"}.get(prediction.explanation.get("method"), "Grad-CAM")
        return f"{method} of {prediction.explanation.get('class', '?')}, a {len(grid)}×{len(grid[0])} grid"

    @admin.display(description="Inference time")
    def inference_time(self, prediction):
        return "—" if prediction.inference_ms is None else f"{prediction.inference_ms:.1f} ms per image"

    @admin.action(
        description="Re-run the selected predictions' images with the active model version", permissions=["change"]
    )
    def rerun_selected(self, request, queryset):
        created = queryset.rerun()
        self.message_user(request, f"Queued {len(created)} new predictions.", messages.SUCCESS)


admin.site.register(UploadBatch)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    fields = ["user", "role", "is_current", "created_at"]
    # Users switch clinics themselves; a new member works here if they worked nowhere (Clinic.add_member's rule).
    readonly_fields = ["is_current", "created_at"]
    autocomplete_fields = ["user"]


@admin.register(Clinic)
class ClinicAdmin(AdminTables):
    """Platform admins make clinics and give them members; a clinic's managers then run its member list."""

    list_display = ["name", "member_count", "created_at"]
    search_fields = ["name"]
    fields = ["name", "created_at"]
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(members=Count("memberships"))

    @admin.display(description="Members", ordering="members")
    def member_count(self, clinic):
        return clinic.members

    def save_formset(self, request, form, formset, change):
        for membership in formset.save(commit=False):
            if membership._state.adding:
                membership.is_current = not Membership.objects.filter(user=membership.user, is_current=True).exists()
            membership.save()
        for membership in formset.deleted_objects:
            membership.delete()


@admin.register(AuditEvent)
class AuditEventAdmin(AdminTables):
    """The audit log, read-only: nobody adds, changes or deletes an event here."""

    list_display = ["at", "username", "clinic", "action", "object_repr", "patient_id", "address"]
    list_filter = ["action", "at"]
    search_fields = ["username", "object_repr"]
    fields = ["at", "user", "username", "clinic", "action", "object_type", "object_id", "object_repr", "patient_id",
              "address", "detail"]  # fmt: skip
    readonly_fields = fields
    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(AdminTables):
    """Users' API tokens, without their keys (never stored) or digests: an administrator sees who has
    which token and when it was last used, and deletes one to revoke it; nobody issues one here."""

    list_display = ["user", "name", "created", "expiry", "last_used"]
    list_filter = ["expiry"]
    search_fields = ["user__username", "name"]
    fields = ["user", "name", "created", "expiry", "last_used"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


admin.site.site_header = "lesionsite administration"


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = ["event_type", "event_id", "attempts", "last_status_code", "last_error", "delivered_at",
              "next_attempt_at", "created_at"]  # fmt: skip
    readonly_fields = fields
    extra = 0
    max_num = 0
    ordering = ["-created_at"]
    show_change_link = False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AdminTables):
    """Users' webhook endpoints. The secret is never shown, here or anywhere after the endpoint's creation."""

    list_display = ["url", "user", "clinic", "events", "is_active", "consecutive_failures", "created_at"]
    list_filter = ["is_active"]
    fields = ["user", "clinic", "url", "events", "is_active", "disabled_reason", "consecutive_failures",
              "created_at"]  # fmt: skip
    readonly_fields = ["user", "url", "consecutive_failures", "created_at"]
    inlines = [WebhookDeliveryInline]

    def has_add_permission(self, request) -> bool:
        return False  # users register their own, through the API, and are shown the secret there
