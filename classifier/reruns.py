"""Re-running predictions with the active model version (after a retraining or a rollback)."""

from __future__ import annotations

from django.db import transaction

from classifier.models import LesionImage, ModelVersion, Prediction
from classifier.queueing import enqueue_predictions


def rerun_predictions(images) -> list[Prediction]:
    """A new queued prediction for each image, with the active version; earlier ones are kept."""
    version = ModelVersion.active()
    with transaction.atomic():
        created = [Prediction.objects.create(image=image, model_version=version) for image in images]
        ids = [prediction.pk for prediction in created]
        transaction.on_commit(lambda: enqueue_predictions(ids))
    return created


def images_of(predictions) -> list[LesionImage]:
    return list(LesionImage.objects.filter(pk__in=predictions.values("image_id")))
