"""Labelling: the queue of images worth an admin's time, and labelling many at once."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.utils import timezone

from classifier.models import CLASS_CHOICES, METHOD_CHOICES, LesionImage, Prediction


def with_latest_prediction(images: QuerySet[LesionImage]) -> QuerySet[LesionImage]:
    """Annotate each image with its latest finished prediction's top class and confidence."""
    latest = Prediction.objects.filter(image=OuterRef("pk"), status=Prediction.Status.DONE).order_by(
        "-finished_at", "-id"
    )
    return images.annotate(
        predicted_class=Subquery(latest.values("top_class")[:1]),
        predicted_confidence=Subquery(latest.values("top_probability")[:1]),
    )


# The labelling queue's order: the model's least sure reading first (a label helps most
# there), images without a finished reading last, then newest first.
QUEUE_ORDER = (F("predicted_confidence").asc(nulls_last=True), "-created_at")


def labelling_queue(images: QuerySet[LesionImage] | None = None) -> QuerySet[LesionImage]:
    """Unlabelled images, the ones the model is least sure of first (no prediction yet: last)."""
    images = LesionImage.objects.all() if images is None else images
    return with_latest_prediction(images.filter(diagnosis="")).order_by(*QUEUE_ORDER)


def label_images(images: QuerySet[LesionImage], diagnosis: str, method: str, note: str, by) -> int:
    """Set the same confirmed diagnosis on many images in one statement; returns how many."""
    if diagnosis not in dict(CLASS_CHOICES):
        raise ValueError(f"unknown diagnosis {diagnosis!r}")
    if method not in dict(METHOD_CHOICES):
        raise ValueError(f"unknown confirmation method {method!r}")
    with transaction.atomic():
        return images.update(
            diagnosis=diagnosis,
            diagnosis_method=method,
            diagnosis_note=note,
            labelled_by=by,
            labelled_at=timezone.now(),
        )
