"""The order a batch's results are read in: what needs a clinician's attention first.

static/batch.js sorts the rows by the same rule as results arrive; keep the two alike.
"""

from __future__ import annotations

from classifier.models import Prediction

# Groups, most urgent first. A failed image has no reading at all, so it comes
# before the unremarkable ones: the clinician has to upload it again.
FLAGGED, UNUSUAL, FAILED, UNREMARKABLE, PENDING = range(5)


def attention_group(prediction: Prediction) -> int:
    if prediction.status == Prediction.Status.FAILED:
        return FAILED
    if prediction.status != Prediction.Status.DONE:
        return PENDING
    if prediction.is_malignant:
        return FLAGGED
    if prediction.is_out_of_distribution or prediction.is_uncertain:
        return UNUSUAL
    return UNREMARKABLE


def attention_key(prediction: Prediction) -> tuple[int, float, int]:
    """Sort key: group, then malignancy score high to low, then upload order."""
    score = prediction.malignant_probability if prediction.malignant_probability is not None else -1.0
    return (attention_group(prediction), -score, prediction.pk)


def by_attention(predictions) -> list[Prediction]:
    return sorted(predictions, key=attention_key)
