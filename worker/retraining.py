"""A retraining job's life cycle: labelled images in, a registered (maybe active) version out.

The learning is training.retrain's (features, head, calibration, evaluation, the
out-of-distribution check, the card); here is the platform's side: which images and
which split (classifier.training_data), progress and cancellation on the job row,
the version folder under TRAINED_MODEL_ROOT, the registry and the quality gate.
TensorFlow is imported only once a job runs: the web process imports
``worker.tasks`` and must never load it.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from classifier.model_store import publish_version, remove_version
from classifier.models import NO_ACTIVE_VERSION, LesionImage, ModelActivation, ModelVersion, TrainingJob
from classifier.private_files import make_private
from classifier.quality_gate import quality_gate
from classifier.training_data import (
    NotEnoughData,
    assign_split,
    count_by_part,
    group_key,
    require_enough_labelled_images,
    saved_lesion_splits,
)
from training.classes import CLASSES
from training.preprocessing import to_model_input
from training.retrain import PARTS, Base, Pictures, Retrained, retrain_head, save_version
from training.train import EpochReport
from worker.model_fetch import local_folder

logger = logging.getLogger(__name__)

# Where a retrained version's pictures came from, for its card (training.retrain adds the counts).
TRAINED_ON = {
    "dataset": "labelled images in this lesionsite database",
    "held_out": "the 'test' part: saved HAM10000 split by lesion_id, else a stable hash of the lesion",
}


class JobCancelled(Exception):
    pass


@dataclass
class LabelledSet:
    images: list[LesionImage]
    labels: np.ndarray  # class indices in CLASSES order
    splits: np.ndarray  # "train" / "val" / "test"

    def part(self, name: str) -> tuple[list[LesionImage], np.ndarray]:
        chosen = self.splits == name
        return [image for image, keep in zip(self.images, chosen, strict=True) if keep], self.labels[chosen]

    def sizes(self) -> dict[str, int]:
        return {name: int((self.splits == name).sum()) for name in PARTS}


# --- which images, which split ---------------------------------------------------------------


def labelled_set() -> LabelledSet:
    """Every labelled image with its class and part; NotEnoughData if the job's rule is not met."""
    images = list(LesionImage.objects.exclude(diagnosis="").order_by("id"))
    saved = saved_lesion_splits()
    labels = np.array([CLASSES.index(image.diagnosis) for image in images], dtype=np.int64)
    keys = [group_key(image.source_lesion_id, image.sha256, image.lesion_id) for image in images]
    splits = np.array([assign_split(key, saved) for key in keys])
    require_enough_labelled_images(count_by_part(zip(splits, (image.diagnosis for image in images), strict=True)))
    return LabelledSet(images, labels, splits)


def load_pixels(images: list[LesionImage], input_size: tuple[int, int], geometry: str) -> np.ndarray:
    """float32 RGB pixels (N, H, W, 3) in 0..255 of the stored pictures, through the serving preprocessing."""
    return np.stack([to_model_input(image.open_pixels(), input_size, geometry) for image in images])


# --- the job ----------------------------------------------------------------------------------


def run_training_job(job_id: int, task_id: str) -> None:
    job = TrainingJob.objects.get(pk=job_id)
    if not job.claim(task_id):
        logger.info("training job %s: not claimed (status %s)", job_id, job.status)
        return
    started = time.monotonic()
    version_dir: Path | None = None
    published = False
    try:
        retrained, version_dir = train_and_export(job)
        card = retrained.card
        if settings.MODEL_VERSIONS_IN_STORE:
            # Before the row exists: a worker on another host that sees the version active finds its files.
            card = publish_version(version_dir)
            published = True
            job.log("version put in the object store")
        with transaction.atomic():
            version = ModelVersion.objects.create(
                name=card["version"],
                directory=version_dir.name,
                root=ModelVersion.Root.TRAINED,
                card=card,
                malignant_threshold=card["thresholds"]["malignant"],
            )
            decision = quality_gate(
                retrained.test_metrics,
                retrained.incumbent_metrics,
                settings.TRAINING_GATE_MAX_BALANCED_ACCURACY_DROP,
                settings.TRAINING_GATE_MIN_MELANOMA_RECALL,
                settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS,
                validation=card["metrics"]["val"],
            )
            if decision.passed:
                version.activate(
                    via=ModelActivation.Via.GATE, reasons=[f"passed the quality gate of training job {job.pk}"]
                )
            gate = {**decision.as_dict(), "activated": decision.passed}
            outcome = (
                "passed: activated"
                if decision.passed
                else "refused to judge"
                if decision.refused
                else ("not passed: kept as candidate")
            )
            job.log(f"quality gate {outcome}")
            job.finish(TrainingJob.Status.SUCCEEDED, result_version=version, gate=gate, metrics=job_metrics(retrained))
        logger.info("training job %s: done in %.0f s, version %s", job_id, time.monotonic() - started, version.name)
    except JobCancelled:
        _discard(version_dir, published)
        job.log("cancelled")
        job.finish(TrainingJob.Status.CANCELLED, error="Cancelled by an administrator.")
    except NotEnoughData as exc:
        _discard(version_dir, published)
        job.finish(TrainingJob.Status.FAILED, error=str(exc))
    except Exception as exc:
        _discard(version_dir, published)
        logger.exception("training job %s failed", job_id)
        job.log(f"failed: {exc.__class__.__name__}: {exc}")
        job.finish(TrainingJob.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}")


def _discard(version_dir: Path | None, published: bool = False) -> None:
    if version_dir is not None and version_dir.exists():
        shutil.rmtree(version_dir, ignore_errors=True)
    if published and version_dir is not None:
        remove_version(version_dir.name)


def train_and_export(job: TrainingJob) -> tuple[Retrained, Path]:
    """Retrain per the job beside the active version; write the new version's folder."""
    data = labelled_set()
    base = ModelVersion.active()
    job.base_version = base
    TrainingJob.objects.filter(pk=job.pk).update(base_version=base)
    job.log(f"{len(data.images)} labelled images: {data.sizes()} in train/val/test")
    if job.start_from == TrainingJob.StartFrom.ACTIVE and base is None:
        raise ValueError(NO_ACTIVE_VERSION)

    now = timezone.now()
    retrained = retrain_head(
        Pictures(
            labels={part: data.part(part)[1] for part in PARTS},
            pixels=lambda part, input_size, geometry: load_pixels(data.part(part)[0], input_size, geometry),
        ),
        job.start_from,
        Base(base.name, local_folder(base), base.malignant_threshold) if base is not None else None,
        job.epochs,
        version=f"retrain-{job.pk}-{now:%Y%m%d-%H%M%S}",
        created=now.isoformat(),
        trained_on=TRAINED_ON,
        recipe_notes={"training_job": job.pk},
        imagenet_weights=settings.TRAINING_IMAGENET_WEIGHTS,
        uncertain_below=settings.UNCERTAIN_BELOW,
        log=job.log,
        on_epoch=_epoch_reporter(job),
    )
    _check_cancel(job)
    version_dir = save_version(Path(settings.TRAINED_MODEL_ROOT), retrained)
    make_private(version_dir)  # a model trained on the site's patients is the site's alone
    return retrained, version_dir


def job_metrics(retrained: Retrained) -> dict:
    """What the job row shows: every epoch, and the headline test numbers beside the incumbent's."""
    incumbent = retrained.incumbent_metrics
    return {
        "history": [asdict(report) for report in retrained.history],
        "test": _headline(retrained.test_metrics),
        "incumbent_test": _headline(incumbent) if incumbent else None,
    }


def _epoch_reporter(job: TrainingJob):
    """on_epoch for training: progress and live metrics on the job row, and the cancel check."""
    history: list[dict] = []

    def report(epoch: EpochReport) -> None:
        history.append(asdict(epoch))
        job.log(f"epoch {epoch.epoch}: loss {epoch.loss:.3f}, val bal. acc {epoch.val_balanced_accuracy:.3f}")
        job.report_progress(epoch.epoch, 90.0 * epoch.epoch / job.epochs, {"history": history})
        _check_cancel(job)

    return report


def _check_cancel(job: TrainingJob) -> None:
    if job.cancel_was_requested():
        raise JobCancelled


def _headline(metrics: dict) -> dict:
    keys = ("n_images", "balanced_accuracy", "macro_f1", "melanoma_recall_at_threshold", "accuracy")
    return {key: metrics.get(key) for key in keys}
