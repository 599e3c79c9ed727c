from __future__ import annotations

import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from classifier.audit import Action, AuditEvent
from classifier.lib.intervals import card_intervals
from classifier.models import (
    CLASS_CHOICES,
    METHOD_CHOICES,
    SEX_CHOICES,
    SITE_CHOICES,
    Lesion,
    LesionImage,
    ModelActivation,
    ModelVersion,
    Patient,
    Prediction,
    TrainingJob,
    UploadBatch,
)
from classifier.patients import REFERENCE_MAX_LENGTH, clean_reference, validate_year_of_birth
from classifier.records import compare_visits
from classifier.uploads import taken_on
from classifier.vocabulary import Side, SkinType
from training.classes import CLASSES

# A camera's clock or a client's may run a little ahead of the server's: not "the future".
CLOCK_SKEW = datetime.timedelta(minutes=5)


@extend_schema_field(
    {
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
        "description": "A date-time (ISO 8601), or a date: its noon in the site's time zone.",
    }
)
class TakenAtField(serializers.Field):
    """When a picture was taken: a date-time, or a date; never in the future."""

    default_error_messages = {
        "invalid": "Enter a date (2025-01-31) or a date and time (2025-01-31T14:30:00Z).",
        "future": "{value} is in the future: give the date the picture was taken.",
    }

    def to_internal_value(self, data):
        text = str(data).strip()
        try:
            if len(text) == 10:
                day = datetime.date.fromisoformat(text)
                if day > timezone.localdate():
                    self.fail("future", value=text)
                return taken_on(day)
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail("invalid")
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        if moment > timezone.now() + CLOCK_SKEW:
            self.fail("future", value=text)
        return moment

    def to_representation(self, value):
        return serializers.DateTimeField().to_representation(value)


class PredictionSummarySerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:prediction-detail")

    class Meta:
        model = Prediction
        fields = ["id", "status", "url"]


class PredictionSerializer(serializers.ModelSerializer):
    has_reading = serializers.BooleanField(
        read_only=True,
        help_text="True when the prediction is done and the picture looks dermatoscopic. False for a picture that "
        "is out of distribution: it gets no reading, so top_class, top_class_name, top_probability and "
        "is_malignant are null; probabilities and malignant_probability stay the model's raw output, for the "
        "record, and must not be shown as a reading.",
    )
    top_class = serializers.CharField(
        read_only=True, allow_null=True, source="top_class_or_none", help_text="Null without a reading."
    )
    top_probability = serializers.FloatField(
        read_only=True, allow_null=True, source="reading_top_probability", help_text="Null without a reading."
    )
    url = serializers.HyperlinkedIdentityField(view_name="api:prediction-detail")
    image = serializers.HyperlinkedRelatedField(view_name="api:image-detail", read_only=True)
    image_id = serializers.IntegerField(source="image.id", read_only=True)
    model_version = serializers.SlugRelatedField(slug_field="name", read_only=True)
    malignant_threshold = serializers.SerializerMethodField()
    flag_figures = serializers.SerializerMethodField()
    top_class_name = serializers.SerializerMethodField()
    probabilities = serializers.SerializerMethodField()
    ood_threshold = serializers.SerializerMethodField()
    queue_seconds = serializers.FloatField(read_only=True)
    total_seconds = serializers.FloatField(read_only=True)
    result_page = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "id",
            "url",
            "image",
            "image_id",
            "status",
            "has_reading",
            "top_class",
            "top_class_name",
            "top_probability",
            "probabilities",
            "malignant_probability",
            "is_malignant",
            "malignant_threshold",
            "flag_figures",
            "is_uncertain",
            "ood_score",
            "ood_threshold",
            "is_out_of_distribution",
            "explanation",
            "lesion_outline",
            "model_version",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "queue_seconds",
            "total_seconds",
            "inference_ms",
            "result_page",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "nullable": True, "description": "Null without a reading."})
    def get_top_class_name(self, prediction: Prediction) -> str | None:
        return prediction.top_class_name or None

    @extend_schema_field(
        {
            "type": "number",
            "nullable": True,
            "description": "The threshold on malignant_probability the flag was judged by "
            "(the model version's operating point when the prediction was made).",
        }
    )
    def get_malignant_threshold(self, prediction: Prediction) -> float | None:
        return prediction.flag_threshold

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "description": "What the flag at malignant_threshold means, from the model card: the share of "
            "malignant lesions it caught (sensitivity) and of benign ones it flagged (false_alarm_rate), "
            "measured_on the held-out 'test' images (or 'val'). Null when the card has no figures for it.",
            "properties": {
                "threshold": {"type": "number"},
                "sensitivity": {"type": "number"},
                "false_alarm_rate": {"type": "number"},
                "measured_on": {"type": "string", "enum": ["test", "val"]},
            },
        }
    )
    def get_flag_figures(self, prediction: Prediction) -> dict | None:
        if prediction.model_version is None:
            return None
        figures = prediction.model_version.flag_figures(prediction.flag_threshold)
        return figures.as_dict() if figures else None

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "number"}, "nullable": True})
    def get_probabilities(self, prediction: Prediction) -> dict[str, float] | None:
        if prediction.probabilities is None:
            return None
        # Always the same key order, whatever order the model's card used.
        return {code: prediction.probabilities[code] for code in CLASSES if code in prediction.probabilities}

    @extend_schema_field({"type": "number", "nullable": True})
    def get_ood_threshold(self, prediction: Prediction) -> float | None:
        """The out-of-distribution score above which the version flags an image (from its card)."""
        if prediction.model_version is None:
            return None
        return (prediction.model_version.card.get("ood") or {}).get("threshold")

    def get_result_page(self, prediction: Prediction) -> str:
        return self.context["request"].build_absolute_uri(prediction.get_absolute_url())


class ImageSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:image-detail")
    file_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField()
    patient = serializers.SerializerMethodField()

    class Meta:
        model = LesionImage
        fields = [
            "id",
            "url",
            "clinic",
            "patient",
            "lesion",
            "taken_at",
            "original_filename",
            "sha256",
            "source_format",
            "width",
            "height",
            "age",
            "sex",
            "site",
            "batch",
            "created_at",
            "diagnosis",
            "diagnosis_method",
            "clinician_note",
            "file_url",
            "thumbnail_url",
            "prediction",
        ]
        read_only_fields = fields

    def get_patient(self, image: LesionImage) -> int | None:
        """The patient whose lesion the image shows; null for a one-off upload."""
        return image.lesion.patient_id if image.lesion_id is not None else None

    def get_file_url(self, image: LesionImage) -> str:
        """The stored image at full resolution (PNG); send the same Authorization header."""
        return self.context["request"].build_absolute_uri(reverse("classifier:image-file", args=[image.pk]))

    def get_thumbnail_url(self, image: LesionImage) -> str:
        """A small preview (WebP, longest side 256 px) for lists; send the same Authorization header."""
        return self.context["request"].build_absolute_uri(reverse("classifier:image-thumbnail", args=[image.pk]))

    @extend_schema_field(PredictionSerializer(allow_null=True))
    def get_prediction(self, image: LesionImage) -> dict | None:
        latest = image.latest_prediction  # preloaded with its version by the list's queryset
        if latest is None:
            return None
        latest.image = image  # the serializer's image fields need no second query
        return PredictionSerializer(latest, context=self.context).data


class UploadSerializer(serializers.Serializer):
    """The multipart form of POST /api/v1/images/: one or more `file` parts and optional fields."""

    file = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        help_text="One or more image files (repeat the part). File names are stored and shown with the pictures: "
        "never name a file after a patient.",
    )
    lesion = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="A lesion of the clinic the request works in (404 otherwise): the images become its pictures.",
    )
    taken_at = TakenAtField(
        required=False,
        allow_null=True,
        help_text="When the pictures were taken (not in the future). Without it: each file's EXIF DateTimeOriginal "
        "when present and not in the future, else the upload's time.",
    )
    age = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=120)
    sex = serializers.ChoiceField(choices=SEX_CHOICES, required=False, allow_blank=True)
    site = serializers.ChoiceField(choices=SITE_CHOICES, required=False, allow_blank=True)


class UploadedImageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when the clinic held these exact bytes before.")
    already_uploaded_at = serializers.DateTimeField(
        allow_null=True, help_text="When these bytes were first uploaded to the clinic; null for a new image."
    )
    original_filename = serializers.CharField()
    ignored_fields = serializers.ListField(
        child=serializers.CharField(),
        help_text="Fields (age, sex, site, lesion, taken_at) this request gave that differ from the stored image's "
        "and were NOT applied: a picture uploaded before keeps the details it was first stored and read with "
        "(PATCH the image with a lesion to attach a one-off upload).",
    )
    prediction = PredictionSummarySerializer()


class UploadResultSerializer(serializers.Serializer):
    batch = serializers.IntegerField(allow_null=True, help_text="The batch's id for a multi-file upload, else null.")
    batch_url = serializers.URLField(
        allow_null=True, help_text="GET it for the batch's progress and its predictions, most suspicious first."
    )
    images = UploadedImageSerializer(many=True)


class StatusCountsSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()


class BatchSerializer(serializers.ModelSerializer):
    """A multi-file upload and how far its predictions have got."""

    url = serializers.HyperlinkedIdentityField(view_name="api:batch-detail")
    uploaded_by = serializers.SlugRelatedField(slug_field="username", source="owner", read_only=True)
    file_count = serializers.SerializerMethodField(help_text="Files sent (already-uploaded ones included).")
    counts = serializers.SerializerMethodField(help_text="The files' predictions by status.")
    finished = serializers.SerializerMethodField(help_text="Predictions done or failed.")
    progress = serializers.SerializerMethodField(help_text="finished / file_count, from 0 to 1.")
    is_finished = serializers.SerializerMethodField(help_text="Every prediction is done or failed.")
    page = serializers.SerializerMethodField(help_text="The batch page in the browser.")

    class Meta:
        model = UploadBatch
        fields = ["id", "url", "created_at", "uploaded_by", "file_count", "counts", "finished", "progress",
                  "is_finished", "page"]  # fmt: skip
        read_only_fields = fields

    def _counts(self, batch: UploadBatch) -> dict[str, int]:
        # A list is annotated (UploadBatchQuerySet.with_status_counts); one batch counts its predictions.
        if hasattr(batch, "file_count"):
            return {status: getattr(batch, f"{status}_count") for status in Prediction.Status.values}
        return UploadBatch.status_counts(self._predictions(batch))

    def _predictions(self, batch: UploadBatch) -> list[Prediction]:
        cached = getattr(batch, "_predictions_by_attention", None)
        if cached is None:
            cached = batch._predictions_by_attention = batch.predictions_by_attention()
        return cached

    @extend_schema_field(StatusCountsSerializer)
    def get_counts(self, batch: UploadBatch) -> dict[str, int]:
        return self._counts(batch)

    def get_file_count(self, batch: UploadBatch) -> int:
        return sum(self._counts(batch).values())

    def get_finished(self, batch: UploadBatch) -> int:
        counts = self._counts(batch)
        return counts[Prediction.Status.DONE] + counts[Prediction.Status.FAILED]

    def get_progress(self, batch: UploadBatch) -> float:
        total = self.get_file_count(batch)
        return round(self.get_finished(batch) / total, 4) if total else 1.0

    def get_is_finished(self, batch: UploadBatch) -> bool:
        return self.get_finished(batch) == self.get_file_count(batch)

    def get_page(self, batch: UploadBatch) -> str:
        return self.context["request"].build_absolute_uri(batch.get_absolute_url())


class BatchPredictionSerializer(PredictionSerializer):
    position = serializers.IntegerField(source="batch_entry.position", help_text="The file's place in the upload.")
    already_uploaded = serializers.BooleanField(
        source="batch_entry.already_uploaded",
        help_text="The clinic had these exact bytes before: this is the reading the picture already had.",
    )
    original_filename = serializers.CharField(source="batch_entry.image.original_filename")

    class Meta(PredictionSerializer.Meta):
        fields = [*PredictionSerializer.Meta.fields, "position", "already_uploaded", "original_filename"]
        read_only_fields = fields


class BatchDetailSerializer(BatchSerializer):
    predictions = serializers.SerializerMethodField(
        help_text="Every file's prediction, what needs attention first: flagged, then uncertain or not "
        "dermatoscopic, then failed, then the rest, then those still pending; by malignancy score within each."
    )

    class Meta(BatchSerializer.Meta):
        fields = [*BatchSerializer.Meta.fields, "predictions"]
        read_only_fields = fields

    @extend_schema_field(BatchPredictionSerializer(many=True))
    def get_predictions(self, batch: UploadBatch) -> list[dict]:
        return BatchPredictionSerializer(self._predictions(batch), many=True, context=self.context).data


class UploadFileErrorSerializer(serializers.Serializer):
    """One refused file of an upload."""

    index = serializers.IntegerField(help_text="The file's position among the request's `file` parts, from 0.")
    file = serializers.CharField(help_text="The file's name as uploaded (without any folder).")
    code = serializers.CharField(help_text="Why it was refused: `empty`, `too_large`, `not_an_image`, ...")
    detail = serializers.CharField(help_text="The reason in words, starting with the file's name.")


class UploadErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    file = serializers.CharField(required=False, help_text="The first refused file, when files were refused.")
    errors = UploadFileErrorSerializer(
        many=True,
        required=False,
        help_text="Every refused file, in upload order; absent when the request itself was refused "
        "(`no_file`, `too_many_files`).",
    )


class LabelSerializer(serializers.Serializer):
    """POST /api/v1/images/{id}/label/ (admins): the confirmed diagnosis and how it was confirmed."""

    diagnosis = serializers.ChoiceField(choices=CLASS_CHOICES)
    method = serializers.ChoiceField(choices=METHOD_CHOICES)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class LabelledImageSerializer(serializers.ModelSerializer):
    labelled_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = LesionImage
        fields = ["id", "diagnosis", "diagnosis_method", "diagnosis_note", "labelled_by", "labelled_at"]
        read_only_fields = fields


class TrainingJobSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:training-job-detail")
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    base_version = serializers.SlugRelatedField(slug_field="name", read_only=True)
    result_version = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "url",
            "status",
            "start_from",
            "epochs",
            "epoch",
            "progress",
            "metrics",
            "log_tail",
            "error",
            "cancel_requested",
            "requested_by",
            "base_version",
            "result_version",
            "gate",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = [f for f in fields if f not in ("start_from", "epochs")]
        extra_kwargs = {"epochs": {"required": False, "min_value": 1}, "start_from": {"required": False}}


class ModelActivationSerializer(serializers.ModelSerializer):
    activated_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    replaced = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = ModelActivation
        fields = ["activated_at", "activated_by", "via", "overrode_gate", "reasons", "replaced"]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:model-version-detail")
    metrics = serializers.SerializerMethodField()
    gate = serializers.SerializerMethodField()
    activation_warnings = serializers.SerializerMethodField()
    activations = ModelActivationSerializer(many=True, read_only=True)
    operating_points = serializers.SerializerMethodField()
    malignancy_score = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["id", "url", "name", "is_active", "root", "malignancy_score", "malignant_threshold",
                  "target_sensitivity", "operating_points", "metrics", "gate", "activation_warnings",
                  "registered_at", "activated_at", "activations"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "array",
            "description": "The card's operating points of the malignancy flag (training.operating_points): "
            "per target sensitivity, the threshold chosen on validation and its sensitivity and specificity "
            "on validation and test. POST operating-point/ to serve one.",
            "items": {"type": "object"},
        }
    )
    def get_operating_points(self, version: ModelVersion) -> list[dict]:
        return version.operating_points

    @extend_schema_field(
        {
            "type": "object",
            "description": "What malignant_probability is for this version's readings, and so what its threshold "
            "applies to: kind 'sum' (P(akiec)+P(bcc)+P(mel)) or 'logistic' (a regression on the seven class "
            "probabilities fitted on validation, with its weights), and a sentence saying what it means.",
            "properties": {"kind": {"type": "string", "enum": ["sum", "logistic"]}, "meaning": {"type": "string"}},
        }
    )
    def get_malignancy_score(self, version: ModelVersion) -> dict:
        score = version.malignancy_score
        return {**(score.card_entry() or {"kind": score.kind}), "meaning": score.description}

    @extend_schema_field({"type": "object"})
    def get_metrics(self, version: ModelVersion) -> dict:
        return version_headline_metrics(version)

    @extend_schema_field({"type": "object", "nullable": True})
    def get_gate(self, version: ModelVersion) -> dict | None:
        """The quality gate's decision (passed, refused, checks, reasons); null: never gated."""
        job = version.gated_by()
        return job.gate if job else None

    def get_activation_warnings(self, version: ModelVersion) -> list[str]:
        """Why activating it needs {"confirm": true}; empty when it does not."""
        return version.activation_warnings()


class OperatingPointSerializer(serializers.Serializer):
    """POST /api/v1/model-versions/{id}/operating-point/: which of the card's operating points the flag uses."""

    target_sensitivity = serializers.FloatField(
        allow_null=True, help_text="One of the version's operating_points' target_sensitivity; null: the card's own."
    )


def version_headline_metrics(version: ModelVersion) -> dict:
    """The numbers to compare versions by, from the card's test metrics, with the held-out
    images per class and the 95 % confidence intervals (classifier.lib.intervals)."""
    test = version.metrics.get("test") or {}
    keys = ("n_images", "balanced_accuracy", "macro_f1", "melanoma_recall_at_threshold", "accuracy", "ece")
    headline = {key: test.get(key) for key in keys}
    per_class = test.get("per_class") or {}
    headline["held_out_per_class"] = {
        code: per_class[code].get("support") for code in CLASSES if code in per_class
    } or None
    intervals = card_intervals(test)
    headline["confidence_intervals_95"] = {
        key: None if intervals[key] is None else list(intervals[key])
        for key in ("balanced_accuracy", "melanoma_recall_at_threshold")
    }
    return headline


class ActivateSerializer(serializers.Serializer):
    confirm = serializers.BooleanField(
        required=False, default=False, help_text="Activate although the quality gate did not pass it (see reasons)."
    )


class ConfirmationRequiredSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(help_text="confirmation_required")
    reasons = serializers.ListField(child=serializers.CharField())


class NotEnoughDataSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(help_text="not_enough_data (or invalid)")
    counts = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        required=False,
        help_text="Labelled images per class in each part: train, val, test.",
    )
    minimum = serializers.DictField(
        child=serializers.IntegerField(), required=False, help_text="Images of each class each part needs."
    )


class AttachSerializer(serializers.Serializer):
    """PATCH /api/v1/images/{id}/: attach a one-off upload to a lesion (the only change an image takes)."""

    lesion = serializers.IntegerField(
        min_value=1,
        help_text="A lesion of any clinic you belong to (404 otherwise); the image moves into the lesion's clinic.",
    )


class PatientSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:patient-detail")
    reference = serializers.CharField(
        max_length=REFERENCE_MAX_LENGTH,
        trim_whitespace=True,
        help_text="The clinic's own reference for the patient (e.g. the record number): 1-64 characters, unique in "
        "the clinic. Store no names: the reference links the record to yours.",
    )
    year_of_birth = serializers.IntegerField(required=False, allow_null=True, validators=[validate_year_of_birth])
    lesion_count = serializers.IntegerField(read_only=True)
    lesions_url = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Patient
        fields = ["id", "url", "reference", "year_of_birth", "sex", "skin_type", "note", "lesion_count",
                  "lesions_url", "created_by", "created_at"]  # fmt: skip
        read_only_fields = ["id", "url", "lesion_count", "lesions_url", "created_by", "created_at"]
        extra_kwargs = {"skin_type": {"help_text": "Fitzpatrick skin type: " + ", ".join(SkinType.values) + "."}}

    def validate_reference(self, value: str) -> str:
        try:
            reference = clean_reference(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        others = Patient.objects.in_clinic(self.context["clinic"]).filter(reference=reference)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(
                f"The clinic already has a patient with the reference {reference!r}.", code="unique"
            )
        return reference

    def get_lesions_url(self, patient: Patient) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:patient-lesions", args=[patient.pk]))


class LesionSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:lesion-detail")
    site = serializers.ChoiceField(choices=SITE_CHOICES, help_text="HAM10000's localization vocabulary.")
    side = serializers.ChoiceField(choices=Side.choices, required=False, allow_blank=True)
    image_count = serializers.IntegerField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    labelled_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Lesion
        fields = ["id", "url", "patient", "label", "site", "side", "map_view", "map_x", "map_y", "status", "note",
                  "diagnosis", "diagnosis_method", "labelled_by", "labelled_at", "image_count", "created_by",
                  "created_at"]  # fmt: skip
        read_only_fields = ["id", "url", "patient", "diagnosis", "diagnosis_method", "labelled_by", "labelled_at",
                            "image_count", "created_by", "created_at"]  # fmt: skip
        extra_kwargs = {
            "map_view": {"help_text": "The body map's view the lesion is placed on: front or back."},
            "map_x": {"help_text": "0 (left edge of the view) to 1 (right edge)."},
            "map_y": {"help_text": "0 (top) to 1 (bottom)."},
            "diagnosis": {"help_text": "The confirmed diagnosis, set by an admin's label; applies to every image."},
        }

    def validate(self, data):
        merged = {
            name: data.get(name, getattr(self.instance, name, "" if name == "map_view" else None))
            for name in ("map_view", "map_x", "map_y")
        }
        given = [merged["map_view"] not in ("", None), merged["map_x"] is not None, merged["map_y"] is not None]
        if any(given) and not all(given):
            missing = [name for name, present in zip(("map_view", "map_x", "map_y"), given, strict=True) if not present]
            raise serializers.ValidationError(
                {name: ["A body-map position needs map_view, map_x and map_y together."] for name in missing}
            )
        return data


class ChangeFlagSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["score-rose", "top-class-changed", "area-changed"])
    image = serializers.IntegerField(help_text="The visit the flag is raised at (an image id of the timeline).")
    compared_with = serializers.IntegerField(help_text="The visit before it that it was compared with.")
    sentence = serializers.CharField()


class ChangeNoteSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["no-reading", "model-changed"])
    image = serializers.IntegerField(help_text="The visit that was not compared.")
    sentence = serializers.CharField()


class ChangesSerializer(serializers.Serializer):
    """Change flags between consecutive visits (classifier.lib.changes at CHANGE_SCORE_RISE and
    CHANGE_AREA_FRACTION); visits without a reading, or read by another model version, are noted instead."""

    flags = ChangeFlagSerializer(many=True)
    notes = ChangeNoteSerializer(many=True)


class LesionDetailSerializer(LesionSerializer):
    timeline = serializers.SerializerMethodField()
    changes = serializers.SerializerMethodField()

    class Meta(LesionSerializer.Meta):
        fields = [*LesionSerializer.Meta.fields, "timeline", "changes"]
        read_only_fields = [*LesionSerializer.Meta.read_only_fields, "timeline", "changes"]

    @extend_schema_field(ChangesSerializer)
    def get_changes(self, lesion: Lesion) -> dict:
        found = compare_visits(lesion.timeline())
        flags = [{"kind": flag.kind, "image": flag.after.key, "compared_with": flag.before.key,
                  "sentence": flag.sentence} for flag in found.flags]  # fmt: skip
        notes = [{"kind": note.kind, "image": note.visit.key, "sentence": note.sentence} for note in found.notes]
        return {"flags": flags, "notes": notes}

    @extend_schema_field(ImageSerializer(many=True))
    def get_timeline(self, lesion: Lesion) -> list[dict]:
        """The lesion's images, oldest taken first, each with its latest prediction."""
        return ImageSerializer(lesion.timeline().select_related("lesion"), many=True, context=self.context).data


class AuditEventSerializer(serializers.ModelSerializer):
    action = serializers.ChoiceField(choices=Action.choices, read_only=True)
    action_name = serializers.CharField(source="get_action_display", read_only=True)
    user = serializers.CharField(source="username", read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "user", "clinic", "action", "action_name", "object_type", "object_id", "object_repr",
                  "patient_id", "address", "detail"]  # fmt: skip
        read_only_fields = fields
