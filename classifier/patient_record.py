"""A patient's rights over their record: a copy of all of it (access), and its erasure.

**Export** writes one zip: ``record.json`` (the patient, their lesions, each lesion's
images with every prediction of them: probabilities, reading, heatmap grid, lesion
outline, model version) and ``images/<image id>.png``, each stored picture as the
clinic keeps it (the upload's pixels, re-encoded, with no metadata).

**Erasure** deletes the patient, their lesions, the lesions' images with their
predictions (whose heatmaps and outlines are stored in the prediction rows) and batch
entries, the batches it leaves empty, and the stored files and thumbnails no other
image uses. Files are content-addressed (one file per distinct picture), so a picture
another clinic also uploaded keeps its file for that clinic. Nothing else is kept:
the caller writes the audit event, which says that a patient was erased, by whom and
how many rows went, but holds no reference, note or picture (classifier.audit).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, replace
from typing import IO

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from classifier.models import BatchEntry, LesionImage, Patient, Prediction, UploadBatch
from classifier.stored_files import unused_files

RECORD_FORMAT = "lesionsite patient record"
RECORD_VERSION = 1


# --- Export -------------------------------------------------------------------------------


def record_file_name(image: LesionImage) -> str:
    return f"images/{image.pk}.{image.file.name.rpartition('.')[2] or 'png'}"


def write_record_zip(patient: Patient, out: IO[bytes]) -> None:
    """The patient's whole record as a zip written to ``out`` (a binary file opened for writing)."""
    lesions = list(patient.lesions.order_by("created_at", "id"))
    images = list(
        LesionImage.objects.filter(lesion__patient=patient).select_related("owner").order_by("taken_at", "id")
    )
    predictions: dict[int, list[Prediction]] = {image.pk: [] for image in images}
    for prediction in Prediction.objects.filter(image__in=images).select_related("model_version").order_by("id"):
        predictions[prediction.image_id].append(prediction)
    missing: set[int] = set()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for image in images:
            try:
                with image.file.open("rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                missing.add(image.pk)
                continue
            # Stored PNGs and JPEGs are compressed already: deflating them again only costs time.
            archive.writestr(record_file_name(image), data, compress_type=zipfile.ZIP_STORED)
        record = {
            "format": RECORD_FORMAT,
            "version": RECORD_VERSION,
            "exported_at": timezone.now().isoformat(),
            "clinic": patient.clinic.name,
            "patient": _patient(patient),
            "lesions": [
                _lesion(lesion, [image for image in images if image.lesion_id == lesion.pk], predictions, missing)
                for lesion in lesions
            ],
        }
        archive.writestr("record.json", json.dumps(record, indent=2, ensure_ascii=False))


def _patient(patient: Patient) -> dict:
    return {
        "id": patient.pk,
        "reference": patient.reference,
        "year_of_birth": patient.year_of_birth,
        "sex": patient.sex,
        "skin_type": patient.skin_type,
        "note": patient.note,
        "created_at": patient.created_at.isoformat(),
    }


def _lesion(lesion, images: list[LesionImage], predictions: dict[int, list[Prediction]], missing: set[int]) -> dict:
    return {
        "id": lesion.pk,
        "label": lesion.label,
        "site": lesion.site,
        "side": lesion.side,
        "map_view": lesion.map_view,
        "map_x": lesion.map_x,
        "map_y": lesion.map_y,
        "status": lesion.status,
        "note": lesion.note,
        "diagnosis": lesion.diagnosis,
        "diagnosis_method": lesion.diagnosis_method,
        "diagnosis_note": lesion.diagnosis_note,
        "labelled_at": lesion.labelled_at.isoformat() if lesion.labelled_at else None,
        "created_at": lesion.created_at.isoformat(),
        "images": [_image(image, predictions[image.pk], image.pk in missing) for image in images],
    }


def _image(image: LesionImage, predictions: list[Prediction], missing: bool) -> dict:
    return {
        "id": image.pk,
        "file": None if missing else record_file_name(image),
        "file_missing": missing,
        "sha256": image.sha256,
        "original_filename": image.original_filename,
        "width": image.width,
        "height": image.height,
        "taken_at": image.taken_at.isoformat(),
        "uploaded_at": image.created_at.isoformat(),
        "uploaded_by": image.owner.get_username(),
        "age": image.age,
        "sex": image.sex,
        "site": image.site,
        "clinician_note": image.clinician_note,
        "predictions": [_prediction(prediction) for prediction in predictions],
    }


def _prediction(prediction: Prediction) -> dict:
    return {
        "id": prediction.pk,
        "status": prediction.status,
        "model_version": prediction.model_version.name if prediction.model_version else None,
        "created_at": prediction.created_at.isoformat(),
        "finished_at": prediction.finished_at.isoformat() if prediction.finished_at else None,
        "probabilities": prediction.probabilities,
        "top_class": prediction.top_class_or_none,
        "malignancy_score": prediction.malignant_probability if prediction.has_reading else None,
        "is_malignant": prediction.is_malignant,
        "malignant_threshold": prediction.malignant_threshold,
        "is_uncertain": prediction.is_uncertain,
        "is_out_of_distribution": prediction.is_out_of_distribution,
        "explanation": prediction.explanation,
        "lesion_outline": prediction.lesion_outline,
        "error": prediction.error,
    }


# --- Erasure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasedRecord:
    """What an erasure removed, as numbers only. It stands for the erased patient in the audit log."""

    patient_id: int
    clinic_id: int
    lesions: int
    images: int
    predictions: int
    files: int

    @property
    def audit_subject(self) -> tuple[str, int, int | None, int | None]:
        return ("patient", self.patient_id, self.patient_id, self.clinic_id)

    @property
    def counts(self) -> dict:
        return {"lesions": self.lesions, "images": self.images, "predictions": self.predictions, "files": self.files}


def erase_patient(patient: Patient) -> ErasedRecord:
    """Delete the patient and everything of theirs (see the module's words); final.

    The rows go in one transaction; the files once it has committed (the images' delete
    signal, classifier.stored_files), so a rollback leaves the record whole. Call it inside
    the transaction that writes the audit event.
    """
    with transaction.atomic():
        images = list(LesionImage.objects.select_for_update().filter(lesion__patient=patient))
        image_ids = [image.pk for image in images]
        batches = set(BatchEntry.objects.filter(image_id__in=image_ids).values_list("batch_id", flat=True))
        batches |= {image.batch_id for image in images if image.batch_id is not None}
        prediction_count = Prediction.objects.filter(image_id__in=image_ids).count()
        lesion_count = patient.lesions.count()
        # Predictions and batch entries go with their images (CASCADE); lesions with the patient.
        LesionImage.objects.filter(pk__in=image_ids).delete()
        UploadBatch.objects.filter(pk__in=batches, images=None, entries=None).delete()
        erased = ErasedRecord(patient.pk, patient.clinic_id, lesion_count, len(images), prediction_count, 0)
        patient.delete()
        unused = [name for name in unused_files(images) if default_storage.exists(name)]
    return replace(erased, files=len(unused))
