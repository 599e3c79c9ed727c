from __future__ import annotations

import django_filters

from classifier.models import CLASS_CHOICES, Prediction


class PredictionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Prediction.Status.choices)
    top_class = django_filters.ChoiceFilter(choices=CLASS_CHOICES)
    batch = django_filters.NumberFilter(
        field_name="batch_entries__batch", label="Batch: the predictions shown for its files"
    )
    image = django_filters.NumberFilter(field_name="image")

    class Meta:
        model = Prediction
        fields = ["status", "top_class", "batch", "image"]
