"""ExperimentRecipe: training.train.Recipe plus the options tried and not shipped (see the package's docstring)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from training.augment import make_augmentation
from training.background import MARGIN_PX
from training.classes import CLASSES
from training.models import unfreeze_top
from training.train import Recipe, option, picture_slices

# How fine-tuning draws its training pictures: "shuffle" shows every picture once per
# epoch; "sqrt" and "balanced" draw each class as often as the square root of its
# size, or equally often, repeating the rare classes' pictures (each time differently
# augmented) and leaving the loss weights to complete the balance.
SAMPLING_MODES = ("shuffle", "sqrt", "balanced")
# The loss weights that, on top of a sampling mode, make every class count the same.
WEIGHTS_COMPLETING = {"shuffle": "balanced", "sqrt": "sqrt", "balanced": "none"}
# Pictures whose activations set the batch-norm statistics before batch-norm is trained:
# 512 x 25..5,625 positions per channel.
BATCH_NORM_PICTURES = 512


@dataclass
class ExperimentRecipe(Recipe):
    sampling: str = option(
        "shuffle", "class-resampled batches; with them, auto weights complete the balance", SAMPLING_MODES
    )
    label_smoothing: float = option(0.0, "in fine-tuning; temperature scaling recalibrates afterwards")
    color_augmentation: bool = option(False, "brightness and per-channel contrast too (training.augment)")
    train_batch_norm: bool = option(
        False, "also train the fine-tuned blocks' batch-norm, after restandardize_batch_norm gave it statistics"
    )
    background_cutout: float = option(
        0.0,
        "with --framing: the share of fine-tuning pictures whose surroundings beyond the lesion mask and a "
        "margin are replaced by a smooth skin-coloured field (training.background). 0: off",
    )
    cutout_margin_px: int = option(
        MARGIN_PX, "with --background-cutout: the skin kept around the lesion, in px of the 150x200 training copies"
    )
    pull_to_start: float = option(
        0.0,
        "decoupled L2-SP (Li et al., ICML 2018): after every fine-tuning step, pull each fine-tuned base "
        "weight back towards its ImageNet value by learning rate x this x the gap. 0: off",
    )
    malignant_group_loss: float = option(
        0.0,
        "in fine-tuning, add this weight x the binary cross-entropy of P(akiec)+P(bcc)+P(mel) against the "
        "label's malignant share (training.experiments.group_loss). 0: off",
    )

    def preset_weights(self) -> str | None:
        if self.imbalance == "auto" and self.logit_adjustment <= 0 and self.sampling != "shuffle":
            return WEIGHTS_COMPLETING[self.sampling]
        return super().preset_weights()

    def augmentation(self):
        return make_augmentation(seed=self.seed, color=self.color_augmentation)

    def wants_masks(self) -> bool:
        return self.background_cutout > 0

    def training_pictures(self, images: np.ndarray, labels: np.ndarray, weights: np.ndarray, masks=None):
        if self.background_cutout > 0:
            return self.cut_out_pictures(images, labels, weights, masks), False
        if self.sampling == "shuffle":
            return super().training_pictures(images, labels, weights)
        return resampled_pictures(images, labels, weights, self.sampling, self.seed), True

    def cut_out_pictures(self, images: np.ndarray, labels: np.ndarray, weights: np.ndarray, masks: np.ndarray):
        """Every picture once an epoch, reshuffled; a ``background_cutout`` share of them cut out
        around the lesion (training.background), then reframed like the rest."""
        import tensorflow as tf

        from training.background import cut_background

        if masks is None or len(masks) != len(images):
            raise ValueError("background cut-out needs one lesion mask per training picture")
        if not self.framing or self.sampling != "shuffle":
            raise ValueError("background cut-out works with --framing and the shuffled stream only")
        if self.cutout_margin_px < 0:
            raise ValueError(f"--cutout-margin-px must be 0 or more, not {self.cutout_margin_px}")
        masked = tf.data.Dataset.from_tensor_slices(masks)
        pictures = tf.data.Dataset.zip(picture_slices(images, labels, weights), masked)
        pictures = pictures.shuffle(len(images), seed=self.seed, reshuffle_each_iteration=True)

        def prepared(slices, mask):
            x, y, w = slices
            picture = tf.cast(x, tf.float32)
            chosen = tf.random.uniform([]) < self.background_cutout
            picture = tf.cond(chosen, lambda: cut_background(picture, mask, self.cutout_margin_px), lambda: picture)
            return self.reframed_input(picture), y, w

        return pictures.map(prepared, num_parallel_calls=tf.data.AUTOTUNE)

    def unfreeze(self, base, train_images: np.ndarray, log) -> int:
        if not self.train_batch_norm:
            return super().unfreeze(base, train_images, log)
        rng = np.random.default_rng(self.seed)
        chosen = rng.choice(len(train_images), min(BATCH_NORM_PICTURES, len(train_images)), replace=False)
        # The base takes pixels already scaled to [-1, 1] (the model's first layer does it).
        pictures = train_images[np.sort(chosen)].astype(np.float32) / 127.5 - 1.0
        t = time.time()
        count = restandardize_batch_norm(base, pictures)
        log(f"batch-norm: {count} layers given the statistics of {len(pictures)} pictures ({time.time() - t:.0f}s)")
        return unfreeze_top(base, self.fine_tune_from, batch_norm=True)

    def fine_tune_loss(self):
        if self.malignant_group_loss > 0:
            from training.experiments.group_loss import WithMalignantGroup

            return WithMalignantGroup(self.malignant_group_loss, self.label_smoothing)
        return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=self.label_smoothing)

    def fine_tune_callbacks(self, model) -> list:
        if self.pull_to_start <= 0 or self.arch != "mobilenetv2":
            return []
        base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
        return [PullToStart(base.trainable_weights, self.pull_to_start)]


def sampling_shares(labels: np.ndarray, mode: str) -> np.ndarray:
    """Per class, the share of the training pictures drawn from it under a sampling mode."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    if mode == "shuffle":
        shares = counts
    elif mode == "sqrt":
        shares = np.sqrt(counts)
    elif mode == "balanced":
        shares = (counts > 0).astype(np.float64)
    else:
        raise ValueError(f"unknown sampling mode {mode!r}")
    return shares / shares.sum()


def resampled_pictures(images: np.ndarray, labels: np.ndarray, weights: np.ndarray, mode: str, seed: int):
    """An endless stream of (pixels, one-hot, sample weight) in which each class appears with its
    ``sampling_shares``, each class's pictures reshuffled on every pass."""
    import tensorflow as tf

    shares = sampling_shares(labels, mode)
    present = [c for c in range(len(CLASSES)) if shares[c] > 0]
    per_class = [
        picture_slices(images[labels == c], labels[labels == c], weights)
        .repeat()
        .shuffle(int(np.sum(labels == c)), seed=seed + c)
        for c in present
    ]
    return tf.data.Dataset.sample_from_datasets(per_class, weights=[shares[c] for c in present], seed=seed)


class PullToStart(keras.callbacks.Callback):
    """After every step, move each of ``variables`` back towards its value at the start of
    training by learning rate x ``strength`` x the gap (``ExperimentRecipe.pull_to_start``)."""

    def __init__(self, variables, strength: float):
        super().__init__()
        self.variables, self.strength = variables, strength
        self.starts: list = []

    def on_train_begin(self, logs=None):
        self.starts = [keras.ops.copy(variable.value) for variable in self.variables]

    def on_train_batch_end(self, batch, logs=None):
        # The step just taken used the schedule's current rate (one step behind: negligible).
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)) * self.strength
        for variable, start in zip(self.variables, self.starts, strict=True):
            variable.assign(variable.value - rate * (variable.value - start))


def restandardize_batch_norm(base: keras.Model, pictures: np.ndarray, batch_size: int = 32) -> int:
    """Give every batch-norm of ``base`` its inputs' statistics on ``pictures``, same function.

    The offline ImageNet weights have batch-norm folded into the convolutions: moving
    mean 0, variance 1, scale 1, so a batch-norm in training mode would normalise
    activations that were never standardised and change what the layer computes. Here
    each layer's moving mean and variance become those of its input on ``pictures``
    (inputs already scaled as the base expects), and its scale and offset absorb the
    change, so the layer computes exactly the same in inference mode. In training mode
    it then normalises by batch statistics close to the moving ones, which is what
    lets fine-tuning train batch-norm (``unfreeze_top(..., batch_norm=True)``).
    Returns the number of layers changed.
    """
    layers = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(base.inputs, [layer.input for layer in layers])
    channels = [layer.input.shape[-1] for layer in layers]
    sums = [np.zeros(n) for n in channels]
    squares = [np.zeros(n) for n in channels]
    values_per_channel = [0] * len(layers)
    for start in range(0, len(pictures), batch_size):
        activations = probe(pictures[start : start + batch_size], training=False)
        for i, activation in enumerate(activations):
            values = np.asarray(activation, dtype=np.float64).reshape(-1, channels[i])
            sums[i] += values.sum(axis=0)
            squares[i] += np.square(values).sum(axis=0)
            values_per_channel[i] += values.shape[0]
    for i, layer in enumerate(layers):
        mean = sums[i] / values_per_channel[i]
        variance = np.maximum(squares[i] / values_per_channel[i] - np.square(mean), 0.0)
        gamma, beta, old_mean, old_variance = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
        old_scale = gamma / np.sqrt(old_variance + layer.epsilon)
        # gamma' (x - mean) / sqrt(variance + eps) + beta' == old_scale (x - old_mean) + beta
        new_gamma = old_scale * np.sqrt(variance + layer.epsilon)
        new_beta = beta + old_scale * (mean - old_mean)
        layer.set_weights([w.astype(np.float32) for w in (new_gamma, new_beta, mean, variance)])
    return len(layers)
