"""The domain: uploaded images, their predictions, and the model versions that make them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connections, models, router, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from PIL import Image, ImageOps

from classifier.audit import AuditEvent  # noqa: F401  (a model of this app)
from classifier.clinics import Clinic, Membership  # noqa: F401  (models of this app)
from classifier.idempotency import IdempotencyRecord  # noqa: F401  (a model of this app)
from classifier.patients import Lesion, Patient  # noqa: F401  (models of this app)
from classifier.queueing import enqueue_predictions, enqueue_training_job
from classifier.tokens import ApiToken  # noqa: F401  (a model of this app)
from classifier.training_data import labelled_counts, require_enough_labelled_images
from classifier.vocabulary import (  # noqa: F401  (re-exported: the domain's vocabularies, as before)
    CLASS_CHOICES,
    METHOD_CHOICES,
    SEX_CHOICES,
    SITE_CHOICES,
    validate_label,
)
from classifier.webhooks import WebhookDelivery, WebhookEndpoint, predictions_finished  # noqa: F401  (models of this app)
from training.card import MODEL_FILENAME
from training.classes import FULL_NAMES
from training.malignancy import MalignancyScore, from_card_entry


@dataclass(frozen=True)
class FlagFigures:
    """How often the malignancy flag at one threshold caught malignant lesions, and flagged benign ones."""

    threshold: float
    sensitivity: float  # share of malignant (akiec, bcc, mel) images flagged
    false_alarm_rate: float  # share of benign images flagged: 1 - specificity
    measured_on: str  # "test" or "val", the card's split the figures come from

    @property
    def measured_on_words(self) -> str:
        return "held-out test images" if self.measured_on == "test" else "validation images"

    def as_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "sensitivity": round(self.sensitivity, 4),
            "false_alarm_rate": round(self.false_alarm_rate, 4),
            "measured_on": self.measured_on,
        }


class ModelVersion(models.Model):
    """A trained model on disk, with its card. At most one is active.

    Shipped versions live under MODEL_ROOT (the repository's models/), versions trained
    on this site under TRAINED_MODEL_ROOT (a data folder), so retraining never writes
    into the checkout.
    """

    class Root(models.TextChoices):
        MODELS = "models", "MODEL_ROOT (shipped versions)"
        TRAINED = "trained", "TRAINED_MODEL_ROOT (trained on this site)"

    name = models.CharField(max_length=100, unique=True, help_text="The card's version.")
    directory = models.CharField(max_length=255, help_text="Folder under its root.")
    # Rows from before TRAINED_MODEL_ROOT existed are all under MODEL_ROOT: the default.
    root = models.CharField(
        max_length=8, choices=Root.choices, default=Root.MODELS, help_text="The folder of versions that holds it."
    )
    card = models.JSONField()
    malignant_threshold = models.FloatField(
        help_text=(
            "Malignancy flag threshold on the version's malignancy score (the card's malignancy_score; "
            "without one, P(akiec)+P(bcc)+P(mel)), from the card."
        )
    )
    is_active = models.BooleanField(default=False)
    registered_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    # The malignancy flag's operating point: one of the card's target sensitivities (None: the
    # card's own threshold). A clinic that wants to miss fewer malignant lesions accepts more
    # false alarms; malignant_threshold follows the choice.
    target_sensitivity = models.FloatField(
        null=True, blank=True, help_text="The card's operating point the flag uses; empty: the card's own threshold."
    )
    operating_point_chosen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    operating_point_chosen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-registered_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_model_version")
        ]

    def __str__(self) -> str:
        return self.name + (" (active)" if self.is_active else "")

    @classmethod
    def root_path(cls, root: str) -> Path:
        return Path(settings.TRAINED_MODEL_ROOT if root == cls.Root.TRAINED else settings.MODEL_ROOT)

    @property
    def folder(self) -> Path:
        """The version's folder: under its recorded root, or under the other one if it was
        moved there (site-trained versions moved out of an older checkout's models/)."""
        recorded = self.root_path(self.root) / self.directory
        if (recorded / MODEL_FILENAME).is_file():
            return recorded
        for root in self.Root.values:
            moved = self.root_path(root) / self.directory
            if (moved / MODEL_FILENAME).is_file():
                return moved
        return recorded

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_FILENAME

    @property
    def metrics(self) -> dict:
        return self.card.get("metrics", {})

    @classmethod
    def active(cls) -> ModelVersion | None:
        return cls.objects.filter(is_active=True).first()

    @property
    def operating_points(self) -> list[dict]:
        """The card's operating points (training.operating_points), lowest target sensitivity first."""
        return list((self.card.get("operating_points") or {}).get("points") or [])

    @property
    def malignancy_score(self) -> MalignancyScore:
        """How this version turns class probabilities into the score its threshold applies to
        (registration validated the card, so the entry parses)."""
        return from_card_entry(self.card.get("malignancy_score"))

    def threshold_for(self, target_sensitivity: float | None) -> float:
        """The card's threshold for a target sensitivity (None: the card's own threshold)."""
        if target_sensitivity is None:
            return float(self.card.get("thresholds", {}).get("malignant", self.malignant_threshold))
        for point in self.operating_points:
            if math.isclose(point["target_sensitivity"], target_sensitivity, abs_tol=1e-9):
                return float(point["threshold"])
        offered = ", ".join(f"{point['target_sensitivity']:.0%}" for point in self.operating_points) or "none"
        raise ValueError(
            f"{self.name} has no operating point for {target_sensitivity:.0%} sensitivity (its card offers: {offered})."
        )

    def choose_operating_point(self, target_sensitivity: float | None, by=None) -> None:
        """Flag new predictions at the card's threshold for this target sensitivity; earlier ones keep theirs."""
        threshold = self.threshold_for(target_sensitivity)
        self.target_sensitivity, self.malignant_threshold = target_sensitivity, threshold
        self.operating_point_chosen_by, self.operating_point_chosen_at = by, timezone.now()
        self.save(update_fields=["target_sensitivity", "malignant_threshold", "operating_point_chosen_by",
                                 "operating_point_chosen_at"])  # fmt: skip

    def flag_figures(self, threshold: float | None) -> FlagFigures | None:
        """What the malignancy flag at this threshold means, in the figures the card holds.

        The test split's figures where the card has them (the threshold was chosen on
        validation, so test is the honest estimate), else validation's; None when the
        card holds no figures for this threshold.
        """
        if threshold is None:
            return None
        for point in self.operating_points:
            if math.isclose(point["threshold"], threshold, abs_tol=1e-9):
                split = "test" if point.get("test") else "val"
                rates = point[split]
                return FlagFigures(threshold, rates["sensitivity"], 1 - rates["specificity"], split)
        test = self.metrics.get("test") or {}
        if math.isclose(test.get("malignant_threshold", -1.0), threshold, abs_tol=1e-9):
            sensitivity = test.get("malignant_sensitivity_at_threshold")
            specificity = test.get("malignant_specificity_at_threshold")
            if sensitivity is not None and specificity is not None:
                return FlagFigures(threshold, sensitivity, 1 - specificity, "test")
        return None

    def gated_by(self) -> TrainingJob | None:
        """The training job whose quality gate judged this version; None if it was never gated."""
        return next((job for job in self.training_jobs.order_by("-id") if job.gate), None)

    def activation_warnings(self) -> list[str]:
        """Why activating this version needs an admin's explicit confirmation; empty when it needs none.

        A version that failed the quality gate always needs one. So does one that was never
        gated (registered from a folder, not by a training job) when it would replace the
        active version; when none is active (a fresh install) there is nothing to protect.
        """
        if self.is_active:
            return []
        job = self.gated_by()
        if job is None:
            if not ModelVersion.objects.filter(is_active=True).exists():
                return []
            return [
                f"{self.name} was never checked by the quality gate: it was registered from {self.folder}, "
                "not by a training job that compared it with the active version on this site's held-out images."
            ]
        if job.gate.get("passed"):
            return []
        failed = [r for r in job.gate.get("reasons", []) if not r.startswith(("passed:", "not checked:"))]
        return [f"The quality gate of training job {job.pk} did not pass it: {reason}" for reason in failed] or [
            f"The quality gate of training job {job.pk} did not pass it."
        ]

    def activate(
        self, by=None, *, via: str = "other", reasons: list[str] | None = None, overrode_gate: bool = False
    ) -> ModelActivation | None:
        """Make this the version new predictions use (workers switch on their next task), and
        record who did it, how and why. None if it was active already."""
        with transaction.atomic():
            if ModelVersion.objects.filter(pk=self.pk, is_active=True).exists():
                self.is_active = True
                return None
            replaced = ModelVersion.objects.filter(is_active=True).first()
            ModelVersion.objects.filter(is_active=True).update(is_active=False)
            self.is_active = True
            self.activated_at = timezone.now()
            self.save(update_fields=["is_active", "activated_at"])
            return ModelActivation.objects.create(
                version=self,
                replaced=replaced,
                activated_by=by,
                activated_at=self.activated_at,
                via=via,
                overrode_gate=overrode_gate,
                reasons=reasons or [],
            )

    def activate_confirmed(self, by, *, via: str, confirmed: bool) -> ModelActivation | None:
        """An admin's activation: refused with the reasons unless ``confirmed`` when the gate did
        not pass this version (``activation_warnings``); an override is recorded as one."""
        warnings = self.activation_warnings()
        if warnings and not confirmed:
            raise ActivationNeedsConfirmation(self, warnings)
        return self.activate(by, via=via, reasons=warnings, overrode_gate=bool(warnings))


class ActivationNeedsConfirmation(Exception):
    def __init__(self, version: ModelVersion, reasons: list[str]):
        super().__init__(f"Activating {version.name} needs a confirmation: " + " ".join(reasons))
        self.version, self.reasons = version, reasons


class ModelActivation(models.Model):
    """One time a version was put in service: when, by whom (nobody: automatically), how, and
    whether an admin overrode the quality gate to do it."""

    class Via(models.TextChoices):
        ADMIN = "admin", "Admin page"
        API = "api", "REST API"
        GATE = "gate", "Quality gate, after its training job"
        REGISTRY = "registry", "Registered while none was active"
        OTHER = "other", "Code or shell"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="activations")
    replaced = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The version that was active before.",
    )  # fmt: skip
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activated_at = models.DateTimeField(default=timezone.now)
    via = models.CharField(max_length=8, choices=Via.choices, default=Via.OTHER)
    overrode_gate = models.BooleanField(
        default=False, help_text="Activated after a confirmation although the quality gate had not passed it."
    )
    reasons = models.JSONField(
        default=list, blank=True, help_text="What the admin confirmed, or why it was activated automatically."
    )

    class Meta:
        ordering = ["-activated_at", "-id"]

    def __str__(self) -> str:
        return f"{self.version.name} activated {self.activated_at:%Y-%m-%d %H:%M}"


class UploadBatchQuerySet(models.QuerySet):
    def in_clinic(self, clinic) -> UploadBatchQuerySet:
        """The clinic's batches (classifier.access resolves the request's clinic); none without one."""
        return self.none() if clinic is None else self.filter(clinic=clinic)

    def with_status_counts(self) -> UploadBatchQuerySet:
        """Each batch with ``file_count`` and ``<status>_count`` for every prediction status, in one query.

        Counted over the entries still in the batch's clinic, as ``UploadBatch.entries_in_clinic``."""
        in_clinic = Q(entries__image__clinic_id=F("clinic_id"))
        counts = {
            f"{status}_count": Count("entries", filter=in_clinic & Q(entries__prediction__status=status))
            for status in Prediction.Status.values
        }
        return self.annotate(file_count=Count("entries", filter=in_clinic), **counts)


class LesionImageQuerySet(models.QuerySet):
    # The labelling queue's order: the model's least sure reading first, images without a
    # reading last, then newest first. The admin's changelist is given it too (get_ordering).
    QUEUE_ORDER = (F("latest_prediction__top_probability").asc(nulls_last=True), "-created_at")

    def in_clinic(self, clinic) -> LesionImageQuerySet:
        """The clinic's images, whoever uploaded them; none without a clinic."""
        return self.none() if clinic is None else self.filter(clinic=clinic)

    def labelling_queue(self) -> LesionImageQuerySet:
        """Unlabelled images, the model's least sure reading first: a label helps most there.

        Images whose latest prediction has no reading yet (queued, failed) come last, then newest first.
        """
        return self.filter(diagnosis="").select_related("latest_prediction").order_by(*self.QUEUE_ORDER)

    def label(self, diagnosis: str, method: str, note: str, by) -> int:
        """Set the same confirmed diagnosis on every image; returns how many images now carry it.

        An image of a lesion labels its lesion, and so every other image of that lesion too
        (Lesion.set_label's rule); an image without one is labelled alone. Three statements.
        """
        validate_label(diagnosis, method)
        fields = {"diagnosis": diagnosis, "diagnosis_method": method, "diagnosis_note": note, "labelled_by": by,
                  "labelled_at": timezone.now()}  # fmt: skip
        with transaction.atomic():
            lesions = list(self.exclude(lesion=None).values_list("lesion_id", flat=True).distinct())
            Lesion.objects.filter(pk__in=lesions).update(**fields)
            chosen = Q(pk__in=self.values("pk")) | Q(lesion_id__in=lesions)
            return LesionImage.objects.filter(chosen).update(**fields)

    def rerun(self) -> list[Prediction]:
        """A new queued prediction for each image, with the active version; earlier ones are kept."""
        return Prediction.objects.queue_for(list(self), ModelVersion.active())

    def refresh_latest_prediction(self) -> int:
        """Point each image at its newest prediction (the one definition of "latest"), in one UPDATE."""
        newest = Prediction.objects.filter(image=OuterRef("pk")).order_by("-created_at", "-id").values("id")[:1]
        return self.update(latest_prediction=Subquery(newest))


class PredictionQuerySet(models.QuerySet):
    def in_clinic(self, clinic) -> PredictionQuerySet:
        """Predictions on the clinic's images, with what their pages show."""
        if clinic is None:
            return self.none()
        return self.select_related("image__lesion__patient", "model_version").filter(image__clinic=clinic)

    def queue_for(self, images: list[LesionImage], version: ModelVersion | None) -> list[Prediction]:
        """A queued prediction for each image, made the images' latest; sent to the workers after commit.

        Two statements whatever the number of images: one INSERT, one UPDATE of the images' link.
        """
        with transaction.atomic():
            created = self.bulk_create([Prediction(image=image, model_version=version) for image in images])
            LesionImage.objects.filter(pk__in=[image.pk for image in images]).refresh_latest_prediction()
            for image, prediction in zip(images, created, strict=True):
                image.latest_prediction = prediction
            ids = [prediction.pk for prediction in created]
            transaction.on_commit(lambda: enqueue_predictions(ids))
        return created

    def rerun(self) -> list[Prediction]:
        """Re-run these predictions' images with the active version."""
        return LesionImage.objects.filter(pk__in=self.values("image_id")).rerun()


class UploadBatch(models.Model):
    """Several images uploaded in one request; inferred together in batches."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches", help_text="Who uploaded it."
    )
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="batches")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(
        null=True, blank=True, help_text="When its last prediction finished; set once (the batch.finished event)."
    )

    objects = UploadBatchQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "upload batches"

    def __str__(self) -> str:
        return f"Batch {self.pk} by {self.owner}"

    def get_absolute_url(self) -> str:
        return reverse("classifier:batch", args=[self.pk])

    @property
    def audit_subject(self) -> tuple[str, int, int | None, int | None]:
        return ("batch", self.pk, None, self.clinic_id)

    def entries_in_clinic(self) -> models.QuerySet:
        """The batch's files, in upload order; an image since attached to another clinic's lesion left with it."""
        return self.entries.filter(image__clinic_id=self.clinic_id)

    def predictions_by_attention(self) -> list[Prediction]:
        """Each file's prediction, what needs attention first (Prediction.by_attention).

        Each carries its file's entry as ``.batch_entry`` (position, already uploaded)."""
        entries = self.entries_in_clinic().select_related("image", "prediction__model_version", "prediction__image")
        for entry in entries:
            entry.prediction.batch_entry = entry
        return Prediction.by_attention(entry.prediction for entry in entries)

    @staticmethod
    def status_counts(predictions) -> dict[str, int]:
        """How many of the predictions are in each status, every status named."""
        counts = dict.fromkeys(Prediction.Status.values, 0)
        for prediction in predictions:
            counts[prediction.status] += 1
        return counts


def image_upload_path(image: LesionImage, filename: str) -> str:
    # Content-addressed: the stored name is the upload's SHA-256, never the
    # client's file name (which may carry paths or control characters).
    extension = filename.rpartition(".")[2] if filename.endswith((".jpg", ".png")) else "png"
    return f"images/{image.sha256[:2]}/{image.sha256}.{extension}"


def working_copy_path(image: LesionImage, filename: str = "") -> str:
    return f"working/{image.sha256[:2]}/{image.sha256}.jpg"


class LesionImage(models.Model):
    """A dermatoscopic image as stored: re-encoded RGB pixels with no metadata.

    It belongs to a clinic (whose members all see it) and, optionally, to a lesion of one
    of the clinic's patients; a quick one-off upload has none until it is attached.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="images", help_text="Who uploaded it."
    )
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="images")
    # PROTECT: a lesion's images are erased with their files, deliberately, never by a cascade.
    lesion = models.ForeignKey(Lesion, null=True, blank=True, on_delete=models.PROTECT, related_name="images")
    batch = models.ForeignKey(UploadBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="images")
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the bytes as uploaded.")
    file = models.FileField(
        upload_to=image_upload_path,
        max_length=255,
        help_text="The picture without metadata: a JPEG's own stream, anything else as PNG.",
    )
    working_file = models.FileField(
        upload_to=working_copy_path,
        max_length=255,
        blank=True,
        help_text="A copy at most 1,024 px a side that the worker reads; empty when the picture is no larger.",
    )
    original_filename = models.CharField(max_length=255, blank=True)
    source_format = models.CharField(max_length=16)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    age = models.PositiveSmallIntegerField(null=True, blank=True)
    sex = models.CharField(max_length=8, choices=SEX_CHOICES, blank=True)
    site = models.CharField(max_length=32, choices=SITE_CHOICES, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    taken_at = models.DateTimeField(
        default=timezone.now, help_text="When the picture was taken: as given, else its EXIF date, else the upload's."
    )
    source_lesion_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="The imported dataset's lesion id (HAM10000's lesion_id); splits keep its images together.",
    )
    # The confirmed diagnosis, set by an admin; labelled images are training data. For an
    # image of a lesion these are the lesion's (Lesion.set_label keeps them equal).
    diagnosis = models.CharField(max_length=8, choices=CLASS_CHOICES, blank=True, db_index=True)
    diagnosis_method = models.CharField(max_length=16, choices=METHOD_CHOICES, blank=True)
    diagnosis_note = models.TextField(blank=True)
    labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labelled_at = models.DateTimeField(null=True, blank=True)
    # The uploading clinician's own note (not the admin's diagnosis_note).
    clinician_note = models.TextField(blank=True, max_length=2000)
    # The image's newest prediction: what every page, list, filter and export shows of it.
    # Kept by Prediction.save, PredictionQuerySet.queue_for and the delete signal below.
    latest_prediction = models.ForeignKey(
        "Prediction", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    objects = LesionImageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["clinic", "sha256"], name="one_image_per_clinic_and_content")]

    def __str__(self) -> str:
        return self.original_filename or f"Image {self.pk}"

    @property
    def audit_subject(self) -> tuple[str, int, int | None, int | None]:
        patient_id = self.lesion.patient_id if self.lesion_id is not None else None
        return ("image", self.pk, patient_id, self.clinic_id)

    def open_pixels(self) -> Image.Image:
        """The upright RGB pixels that models read: the working copy, or the stored picture when it is small.

        Raises FileNotFoundError when the file is missing."""
        name = self.working_file.name or self.file.name
        with default_storage.open(name, "rb") as handle, Image.open(handle) as stored:
            stored.load()
            # A stored JPEG keeps its orientation tag (classifier.lib.jpeg_segments.with_orientation).
            upright = ImageOps.exif_transpose(stored)
            return upright if upright.mode == "RGB" else upright.convert("RGB")

    @property
    def stored_content_type(self) -> str:
        return "image/jpeg" if self.file.name.endswith(".jpg") else "image/png"

    def set_label(self, diagnosis: str, method: str, note: str, by) -> None:
        """Record the confirmed diagnosis, who confirmed it and when: the lesion's, for an image of one."""
        if self.lesion_id is not None:
            self.lesion.set_label(diagnosis, method, note, by)
            for name, value in self.lesion.label_fields.items():
                setattr(self, name, value)
            return
        validate_label(diagnosis, method)
        self.diagnosis, self.diagnosis_method, self.diagnosis_note = diagnosis, method, note
        self.labelled_by, self.labelled_at = by, timezone.now()
        self.save(update_fields=["diagnosis", "diagnosis_method", "diagnosis_note", "labelled_by", "labelled_at"])

    def attach_to(self, lesion: Lesion) -> None:
        """Make this one-off upload a picture of ``lesion``, moving it into the lesion's clinic.

        The image takes the lesion's confirmed diagnosis; a labelled image attached to an
        unlabelled lesion labels the lesion (and its other images). Refused, with nothing
        changed (AttachRefused), when the image already belongs to another lesion, when its
        label contradicts the lesion's, or when the lesion's clinic holds the same picture.
        """
        with transaction.atomic():
            image = LesionImage.objects.select_for_update().get(pk=self.pk)
            lesion = Lesion.objects.select_for_update().select_related("patient").get(pk=lesion.pk)
            if image.lesion_id == lesion.pk:
                return
            if image.lesion_id is not None:
                raise AttachRefused(f"{image} is already a picture of lesion {image.lesion_id}.")
            clinic_id = lesion.patient.clinic_id
            moves = clinic_id != image.clinic_id
            twin = LesionImage.objects.filter(clinic_id=clinic_id, sha256=image.sha256).first() if moves else None
            if twin is not None:
                raise AttachRefused(
                    f"The lesion's clinic already holds this exact picture (image {twin.pk}): attach that one instead."
                )
            if lesion.diagnosis and image.diagnosis and lesion.diagnosis != image.diagnosis:
                raise AttachRefused(
                    f"{image} is labelled {image.diagnosis} and the lesion {lesion.diagnosis}: "
                    "an image of a lesion carries the lesion's diagnosis, so one of the two labels is wrong."
                )
            fields = {"lesion_id": lesion.pk, "clinic_id": clinic_id}
            if moves:
                fields["batch"] = None  # the batch stays the old clinic's
            if lesion.diagnosis:
                fields.update(lesion.label_fields)
            LesionImage.objects.filter(pk=image.pk).update(**fields)
            if not lesion.diagnosis and image.diagnosis:
                label = {name: getattr(image, name) for name in lesion.label_fields}
                Lesion.objects.filter(pk=lesion.pk).update(**label)
                LesionImage.objects.filter(lesion_id=lesion.pk).update(**label)
        self.refresh_from_db()


class AttachRefused(ValueError):
    """An image cannot become a picture of that lesion; the message says why."""


class Prediction(models.Model):
    """One model version's reading of one image; moves queued → running → done | failed."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    image = models.ForeignKey(LesionImage, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="predictions"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    probabilities = models.JSONField(null=True, blank=True, help_text="Class code → probability.")
    top_class = models.CharField(max_length=8, choices=CLASS_CHOICES, blank=True, db_index=True)
    top_probability = models.FloatField(null=True, blank=True)
    malignant_probability = models.FloatField(null=True, blank=True)
    is_malignant = models.BooleanField(
        null=True,
        blank=True,
        help_text="Malignancy score at or above malignant_threshold; null without a reading (out of distribution).",
    )
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True, help_text="The Celery task that claimed it.")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    inference_ms = models.FloatField(null=True, blank=True, help_text="Model time per image, in the batch.")
    # Honest confidence, decided by the worker with the version's card and settings.
    is_uncertain = models.BooleanField(null=True, blank=True, help_text="Top probability below the uncertainty bar.")
    ood_score = models.FloatField(
        null=True, blank=True, help_text="Distance of the image's features from the training images (training.ood)."
    )
    is_out_of_distribution = models.BooleanField(
        null=True, blank=True, help_text="Unlike a dermatoscopic image: score above the card's threshold."
    )
    explanation = models.JSONField(
        null=True, blank=True, help_text="Heatmap of the top class: method, layer, grid, class and the box it covers."
    )
    lesion_outline = models.JSONField(
        null=True,
        blank=True,
        help_text="Where the version located the lesion (training.lesion_mask.outline): its grid, its share of "
        "the part of the picture the model saw (relative, no ruler) and its box; none for versions without a mask.",
    )
    malignant_threshold = models.FloatField(
        null=True, blank=True, help_text="The threshold the malignancy flag was judged by (the version's, then)."
    )

    objects = PredictionQuerySet.as_manager()

    # The order a batch's results are read in, most urgent first (static/batch.js has the
    # same groups). A failed image has no reading at all, so it comes before the
    # unremarkable ones: the clinician has to upload it again.
    FLAGGED, UNUSUAL, FAILED, UNREMARKABLE, PENDING = range(5)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Every task looks up the queued rows (to fill its batch) and the rows it holds:
        # small partial indexes keep both lookups independent of the table's history.
        indexes = [
            models.Index(fields=["id"], condition=Q(status="queued"), name="prediction_queued"),
            models.Index(fields=["task_id"], condition=Q(status="running"), name="prediction_running_task"),
        ]

    def __str__(self) -> str:
        return f"Prediction {self.pk} ({self.status})"

    def save(self, *args, **kwargs):
        creating = self._state.adding
        super().save(*args, **kwargs)
        if creating:
            LesionImage.objects.filter(pk=self.image_id).refresh_latest_prediction()

    def get_absolute_url(self) -> str:
        return reverse("classifier:prediction", args=[self.pk])

    @property
    def attention_group(self) -> int:
        if self.status == self.Status.FAILED:
            return self.FAILED
        if self.status != self.Status.DONE:
            return self.PENDING
        if self.is_malignant:
            return self.FLAGGED
        if self.is_out_of_distribution or self.is_uncertain:
            return self.UNUSUAL
        return self.UNREMARKABLE

    @staticmethod
    def by_attention(predictions) -> list[Prediction]:
        """What needs a clinician's attention first: by group, then malignancy score high to low, then upload order."""

        def key(prediction: Prediction) -> tuple[int, float, int]:
            score = prediction.malignant_probability if prediction.malignant_probability is not None else -1.0
            return (prediction.attention_group, -score, prediction.pk)

        return sorted(predictions, key=key)

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def flag_threshold(self) -> float | None:
        """The threshold this prediction's flag is (or will be) judged by."""
        if self.malignant_threshold is not None:
            return self.malignant_threshold
        return self.model_version.malignant_threshold if self.model_version else None

    @property
    def has_reading(self) -> bool:
        """A finished prediction of a picture that looks dermatoscopic.

        An out-of-distribution picture gets no reading: no lesion class and no
        malignancy flag, on every page, in the CSV and in the API. Its raw
        probabilities are kept, and shown folded away, for the record.
        """
        return self.status == self.Status.DONE and not self.is_out_of_distribution

    @property
    def top_class_or_none(self) -> str | None:
        return (self.top_class or None) if self.has_reading else None

    @property
    def top_class_name(self) -> str:
        return FULL_NAMES.get(self.top_class, "") if self.has_reading else ""

    @property
    def reading_top_probability(self) -> float | None:
        return self.top_probability if self.has_reading else None

    @property
    def queue_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.started_at - self.created_at).total_seconds()

    @property
    def total_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()

    @classmethod
    def claim(cls, ids: list[int], task_id: str, also_queued: int = 0) -> list[Prediction]:
        """Mark the given predictions running for this task; return every row it now holds
        (with its image), oldest first.

        Conditional update, so two deliveries of one task cannot both run an image:
        a queued row is taken by whoever comes first, and a running row only by a
        redelivery of the task that claimed it (its worker died mid-task).

        ``also_queued``: take up to this many other queued predictions too, oldest
        first, so that single uploads arriving together share one model call. Their
        own tasks then find them taken and do nothing; a redelivery of this task
        takes back everything this task held.

        Two statements: one UPDATE, one SELECT (each round trip costs ~1 ms of a
        one-image task's ~55 ms, docs/PERFORMANCE.md).
        """
        mine = Q(status=cls.Status.QUEUED, id__in=ids) | Q(status=cls.Status.RUNNING, task_id=task_id)
        if also_queued > 0:
            others = cls.objects.filter(status=cls.Status.QUEUED).exclude(id__in=ids)
            oldest = others.order_by("id").values("id")[:also_queued]
            # `status=queued` on the row itself, not only in the subquery: PostgreSQL
            # re-checks the outer condition on a row another worker took meanwhile
            # (and committed), so that row is skipped rather than taken twice.
            mine |= Q(status=cls.Status.QUEUED, id__in=oldest)
        with transaction.atomic():
            cls.objects.filter(mine).update(
                status=cls.Status.RUNNING,
                task_id=task_id,
                started_at=timezone.now(),
                attempts=models.F("attempts") + 1,
            )
            held = cls.objects.filter(status=cls.Status.RUNNING, task_id=task_id)
            return list(held.select_related("image").order_by("id"))

    @classmethod
    def done_fields(
        cls,
        version: ModelVersion,
        probabilities: dict[str, float],
        malignant: float,
        inference_ms: float,
        *,
        is_uncertain: bool | None = None,
        ood_score: float | None = None,
        is_out_of_distribution: bool | None = None,
        explanation: dict | None = None,
        lesion_outline: dict | None = None,
    ) -> dict:
        """The columns a finished reading sets (finish_many stores them)."""
        top_class = max(probabilities, key=probabilities.get)
        threshold = version.malignant_threshold
        return {
            "is_uncertain": is_uncertain,
            "ood_score": ood_score,
            "is_out_of_distribution": is_out_of_distribution,
            "explanation": explanation,
            "lesion_outline": lesion_outline,
            "status": cls.Status.DONE,
            "model_version": version,
            "probabilities": probabilities,
            "top_class": top_class,
            "top_probability": probabilities[top_class],
            "malignant_probability": malignant,
            # No flag for a picture that is not dermatoscopic: it got no reading.
            "is_malignant": None if is_out_of_distribution else malignant >= threshold,
            "malignant_threshold": threshold,
            "inference_ms": inference_ms,
            "error": "",
        }

    def mark_failed(self, message: str) -> bool:
        return self._finish(status=self.Status.FAILED, error=message)

    def return_to_queue(self, message: str) -> bool:
        """running → queued again, saying why: what it needs (the file store, the model's files) is
        unavailable for now, and the sweep (classifier.sweeper) sends it again. Not a failure: no
        webhook, no finished time; the message shows while it waits and is cleared when it is done."""
        returned = Prediction.objects.filter(pk=self.pk, status=self.Status.RUNNING, task_id=self.task_id).update(
            status=self.Status.QUEUED, task_id="", started_at=None, error=message
        )
        if returned:
            self.status, self.task_id, self.started_at, self.error = self.Status.QUEUED, "", None, message
        return bool(returned)

    def _finish(self, **fields) -> bool:
        fields["finished_at"] = timezone.now()
        updated = Prediction.objects.filter(pk=self.pk, status=self.Status.RUNNING, task_id=self.task_id).update(
            **fields
        )
        if updated:
            for name, value in fields.items():
                setattr(self, name, value)
            _announce_finished([self.pk])
        return bool(updated)

    @classmethod
    def finish_many(cls, task_id: str, rows: list[tuple[Prediction, dict]]) -> list[Prediction]:
        """``_finish`` for many rows of one task at once; return the predictions stored.

        Each row gets the same conditional UPDATE as ``_finish`` (still held by this
        task), but all of them go to the database in one ``executemany``, which
        psycopg 3 pipelines into one round trip: 32 rows one UPDATE each through the
        ORM took 17.5-18.7 ms, an eighth of a 32-image task, against 5.7-7.1 ms this
        way (docs/PERFORMANCE.md). Every row must set the same fields. Call it inside
        a transaction to store all or none.
        """
        if not rows:
            return []
        connection = connections[router.db_for_write(cls)]
        finished_at = timezone.now()
        names = [*rows[0][1], "finished_at"]
        fields = [cls._meta.get_field(name) for name in names]
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
        # Only quoted column and table names of this model are formatted in; every value is a parameter.
        sql = (
            f"UPDATE {quote(cls._meta.db_table)} SET {assignments} "  # nosec B608
            f"WHERE {quote('id')} = %s AND {quote('status')} = %s AND {quote('task_id')} = %s"
        )
        params = []
        for prediction, values in rows:
            if list(values) != names[:-1]:
                raise ValueError("finish_many: every row must set the same fields, in the same order")
            values = {**values, "finished_at": finished_at}
            row = [field.get_db_prep_save(_column_value(field, values[field.name]), connection) for field in fields]
            params.append([*row, prediction.pk, cls.Status.RUNNING.value, task_id])
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)
            updated = cursor.rowcount
        if updated == len(rows):
            stored = [prediction for prediction, _ in rows]
        else:
            # Some rows were no longer this task's (a sweep re-queued them and another
            # task took them): find out which ones this call did store.
            mine = set(
                cls.objects.filter(
                    pk__in=[prediction.pk for prediction, _ in rows], task_id=task_id, finished_at=finished_at
                ).values_list("pk", flat=True)
            )
            stored = [prediction for prediction, _ in rows if prediction.pk in mine]
        by_pk = {prediction.pk: values for prediction, values in rows}
        for prediction in stored:
            for name, value in {**by_pk[prediction.pk], "finished_at": finished_at}.items():
                setattr(prediction, name, value)
        _announce_finished([prediction.pk for prediction in stored])
        return stored


def _announce_finished(prediction_ids: list[int]) -> None:
    """The one place that tells of finished predictions (classifier.webhook_events listens), once
    committed: a rolled-back result is never announced. robust: a listener's error is logged and
    never fails the inference that finished them."""
    if prediction_ids:
        transaction.on_commit(
            lambda: predictions_finished.send(sender=Prediction, prediction_ids=prediction_ids), robust=True
        )


@receiver(post_delete, sender=Prediction)
def _point_at_the_newest_remaining(sender, instance: Prediction, **kwargs) -> None:
    LesionImage.objects.filter(pk=instance.image_id, latest_prediction=None).refresh_latest_prediction()


def _column_value(field: models.Field, value):
    """What a raw statement stores for a field: the primary key for a relation."""
    if field.is_relation and isinstance(value, models.Model):
        return value.pk
    return value


class BatchEntry(models.Model):
    """One file of a batch upload as the clinician sent it: a new image, or one they had uploaded before.

    A batch lists every file sent, so a picture already in the clinician's history
    still appears in the batch, with the reading it already had.
    """

    batch = models.ForeignKey(UploadBatch, on_delete=models.CASCADE, related_name="entries")
    image = models.ForeignKey(LesionImage, on_delete=models.CASCADE, related_name="batch_entries")
    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="batch_entries")
    already_uploaded = models.BooleanField(
        default=False, help_text="The clinician had uploaded these exact bytes before this batch."
    )
    position = models.PositiveIntegerField(help_text="Order of the file in the upload.")

    class Meta:
        ordering = ["batch", "position"]
        constraints = [models.UniqueConstraint(fields=["batch", "image"], name="one_entry_per_image_and_batch")]
        verbose_name_plural = "batch entries"

    def __str__(self) -> str:
        return f"{self.image} in batch {self.batch_id}"


class UnlabelledImage(LesionImage):
    """The labelling queue in the admin: the same rows, listed by how unsure the model is."""

    class Meta:
        proxy = True
        verbose_name = "labelling queue entry"
        verbose_name_plural = "labelling queue"


class JobConflict(Exception):
    """Another training job is queued or running: only one runs at a time."""

    def __init__(self, open_job: TrainingJob):
        super().__init__(f"Training job {open_job.pk} is {open_job.status}; wait for it or cancel it first.")
        self.open_job = open_job


NO_ACTIVE_VERSION = "There is no active version to start from; start from ImageNet instead."
NOT_SENT = "The training queue could not be reached (is Redis running?); nothing was changed. Start the job again."


class TrainingJob(models.Model):
    """A retraining run on the `training` queue: from labelled images to a candidate model version."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class StartFrom(models.TextChoices):
        ACTIVE = "active", "The active model version"
        IMAGENET = "imagenet", "ImageNet weights (a fresh MobileNetV2)"

    OPEN_STATUSES = (Status.QUEUED, Status.RUNNING)
    LOG_LINES_KEPT = 40

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    start_from = models.CharField(max_length=10, choices=StartFrom.choices, default=StartFrom.ACTIVE)
    epochs = models.PositiveSmallIntegerField(default=3)
    epoch = models.PositiveSmallIntegerField(default=0, help_text="Epochs finished so far.")
    progress = models.FloatField(default=0.0, help_text="Percent done.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Live per-epoch metrics, then the evaluation.")
    log_tail = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    task_id = models.CharField(max_length=64, blank=True)
    base_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The active version when the job started: what the result is compared with.",
    )  # fmt: skip
    result_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    gate = models.JSONField(default=dict, blank=True, help_text="The quality gate's decision and reasons.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Training job {self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @classmethod
    def start(cls, user, start_from: str = StartFrom.ACTIVE, epochs: int = 3) -> TrainingJob:
        """Create a queued job and send it to the `training` queue once committed.

        A job that would fail is refused here, before anything is queued, by the rule the
        job itself applies (NotEnoughData, a ValueError with the counts); so is a second open
        job (JobConflict). A job the broker cannot take is failed at once, so it blocks nothing.
        """
        if not 1 <= epochs <= settings.TRAINING_MAX_EPOCHS:
            raise ValueError(f"epochs must be between 1 and {settings.TRAINING_MAX_EPOCHS}")
        with transaction.atomic():
            open_job = cls.objects.select_for_update().filter(status__in=cls.OPEN_STATUSES).first()
            if open_job is not None:
                raise JobConflict(open_job)
            if start_from == cls.StartFrom.ACTIVE and not ModelVersion.objects.filter(is_active=True).exists():
                raise ValueError(NO_ACTIVE_VERSION)
            require_enough_labelled_images(labelled_counts())
            job = cls.objects.create(requested_by=user, start_from=start_from, epochs=epochs)

            def send() -> None:
                if not enqueue_training_job(job.pk):
                    job.finish(cls.Status.FAILED, error=NOT_SENT)

            transaction.on_commit(send)
        return job

    def claim(self, task_id: str) -> bool:
        """queued → running for this task; False if it was cancelled or taken meanwhile."""
        claimed = TrainingJob.objects.filter(pk=self.pk, status=self.Status.QUEUED, cancel_requested=False).update(
            status=self.Status.RUNNING, task_id=task_id, started_at=timezone.now()
        )
        self.refresh_from_db()
        return bool(claimed)

    def request_cancel(self) -> None:
        """A queued job is cancelled at once; a running one stops at its next progress report."""
        TrainingJob.objects.filter(pk=self.pk, status__in=self.OPEN_STATUSES).update(cancel_requested=True)
        TrainingJob.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.CANCELLED, finished_at=timezone.now(), error="Cancelled before it started."
        )
        self.refresh_from_db()

    def cancel_was_requested(self) -> bool:
        return TrainingJob.objects.filter(pk=self.pk, cancel_requested=True).exists()

    def log(self, line: str) -> None:
        stamped = f"{timezone.now():%H:%M:%S} {line}"
        lines = (self.log_tail.splitlines() + [stamped])[-self.LOG_LINES_KEPT :]
        self.log_tail = "\n".join(lines)
        TrainingJob.objects.filter(pk=self.pk).update(log_tail=self.log_tail)

    def report_progress(self, epoch: int, progress: float, metrics: dict) -> None:
        self.epoch, self.progress, self.metrics = epoch, round(progress, 1), metrics
        TrainingJob.objects.filter(pk=self.pk).update(epoch=epoch, progress=self.progress, metrics=metrics)

    def finish(self, status: str, **fields) -> None:
        fields.update(status=status, finished_at=timezone.now())
        if status == self.Status.SUCCEEDED:
            fields["progress"] = 100.0
        TrainingJob.objects.filter(pk=self.pk).update(**fields)
        self.refresh_from_db()
