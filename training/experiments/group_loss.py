"""Cross-entropy over the seven classes plus a malignant-versus-benign term on the same softmax.

The flag thresholds a score read from the summed probability of the malignant and
pre-malignant classes; the seven-way loss never asks for that sum to separate the two
groups, only for the right class to win. This loss adds, with weight ``group_weight``,
the binary cross-entropy of the group probabilities, P(akiec) + P(bcc) + P(mel) against
the rest, with the label's own share of malignant classes (a mixup label's is between
0 and 1). The model and its outputs are unchanged: only what fine-tuning pushes for.
"""

from __future__ import annotations

import keras
from keras import ops

from training.classes import CLASSES, MALIGNANT_CLASSES

MALIGNANT = [code in MALIGNANT_CLASSES for code in CLASSES]


class WithMalignantGroup(keras.losses.Loss):
    """Per picture: categorical cross-entropy of the logits + ``group_weight`` x the group's binary one."""

    def __init__(self, group_weight: float, label_smoothing: float = 0.0, name: str = "with_malignant_group"):
        super().__init__(name=name)
        self.group_weight = group_weight
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        seven_way = keras.losses.categorical_crossentropy(
            y_true, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )
        malignant = ops.convert_to_tensor(MALIGNANT)
        # log P(group) as a log-sum-exp of its logits, so a confident softmax never takes log(0).
        masked_out = ops.full_like(y_pred, -1e9)
        everything = ops.logsumexp(y_pred, axis=-1)
        log_malignant = ops.logsumexp(ops.where(malignant, y_pred, masked_out), axis=-1) - everything
        log_benign = ops.logsumexp(ops.where(malignant, masked_out, y_pred), axis=-1) - everything
        share = ops.sum(ops.where(malignant, y_true, ops.zeros_like(y_true)), axis=-1)
        group = -(share * log_malignant + (1.0 - share) * log_benign)
        return seven_way + self.group_weight * group

    def get_config(self) -> dict:
        return {"group_weight": self.group_weight, "label_smoothing": self.label_smoothing, "name": self.name}
