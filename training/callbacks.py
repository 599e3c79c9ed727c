"""The Keras callbacks training.train adds to fit(): the validation score, the last
epochs' weights and the time budget. Keras's EarlyStopping keeps the best epoch by
the score that ValidationScore puts into the epoch's logs."""

from __future__ import annotations

import time
from collections import deque

import keras
import numpy as np

from training.train import PREDICT_BATCH, EpochReport, balanced_accuracy, softmax_cross_entropy


class ValidationScore(keras.callbacks.Callback):
    """After each epoch, score ``scored`` on validation: put its balanced accuracy (MONITOR) and
    loss into the epoch's logs for the callbacks after it, and report the epoch to ``on_epoch``.

    ``scored`` is the model whose plain logits are served: the fitted model, or the model
    under a training-only view of it (training.train.with_logit_adjustment).
    """

    MONITOR = "val_balanced_accuracy"

    def __init__(self, scored, val_inputs: np.ndarray, val_labels: np.ndarray, phase: str, on_epoch):
        super().__init__()
        self.scored, self.val_inputs, self.val_labels = scored, val_inputs, val_labels
        self.phase, self.on_epoch = phase, on_epoch
        self.history: list[EpochReport] = []
        self._began = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._began = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logits = self.scored.predict(self.val_inputs, batch_size=PREDICT_BATCH, verbose=0)
        report = EpochReport(
            phase=self.phase,
            epoch=epoch + 1,
            loss=float(logs.get("loss", float("nan"))),
            val_loss=softmax_cross_entropy(logits, self.val_labels),
            val_balanced_accuracy=balanced_accuracy(self.val_labels, logits.argmax(axis=1)),
            seconds=time.time() - self._began,
        )
        logs[self.MONITOR], logs["val_loss"] = report.val_balanced_accuracy, report.val_loss
        self.history.append(report)
        self.on_epoch(report)


class RecentWeights(keras.callbacks.Callback):
    """The weights of ``watched`` after each of the last ``count`` epochs, as (epoch, weights) in ``kept``."""

    def __init__(self, watched, count: int):
        super().__init__()
        self.watched = watched
        self.kept: deque = deque(maxlen=max(count, 1))

    def on_epoch_end(self, epoch, logs=None):
        self.kept.append((epoch + 1, self.watched.get_weights()))


class Deadline(keras.callbacks.Callback):
    """Stop before an epoch that, as long as the last one, would end past ``deadline`` (a time.time())."""

    def __init__(self, deadline: float, phase: str, log):
        super().__init__()
        self.deadline, self.phase, self.log = deadline, phase, log
        self._began = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._began = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if time.time() + (time.time() - self._began) > self.deadline:
            self.log(f"{self.phase}: stopping after epoch {epoch + 1}, the next would pass the time budget")
            self.model.stop_training = True
