"""Who may see what: a clinician sees their own images and predictions, an admin sees all."""

from __future__ import annotations

from django.db.models import QuerySet

from classifier.models import LesionImage, Prediction, UploadBatch


def is_admin(user) -> bool:
    return bool(user.is_authenticated and user.is_staff)


def visible_images(user) -> QuerySet[LesionImage]:
    images = LesionImage.objects.all()
    return images if is_admin(user) else images.filter(owner=user)


def visible_predictions(user) -> QuerySet[Prediction]:
    predictions = Prediction.objects.select_related("image", "model_version")
    return predictions if is_admin(user) else predictions.filter(image__owner=user)


def visible_batches(user) -> QuerySet[UploadBatch]:
    batches = UploadBatch.objects.all()
    return batches if is_admin(user) else batches.filter(owner=user)
