"""Train a lesion classifier on the lesion-grouped HAM10000 split.

Pipeline order: load the cached images of the train and validation splits, weigh
the classes, build tf.data pipelines (augmentation in training only), build the
model, train, keep the epoch with the best validation balanced accuracy, save the
logits model and what happened into a run folder. ``training.evaluate`` then
calibrates and scores the run, and ``training.export`` ships it.

    python -m training.train --arch mobilenetv2 --out training_runs/mnv2 \\
        --weights ../shared/data/imagenet/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
    python -m training.train --arch cnn --out training_runs/cnn --time-budget-min 12

Nothing here looks at the test split.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from training.classes import CLASSES
from training.data import DEFAULT_SPLIT_FILE, load_images, one_hot, read_split

LOGITS_MODEL_FILENAME = "model_logits.keras"
RUN_FILENAME = "run.json"
IMBALANCE_MODES = ("none", "sqrt", "balanced")
# How fine-tuning draws its training pictures: "shuffle" shows every picture once per
# epoch; "sqrt" and "balanced" draw each class as often as the square root of its
# size, or equally often, repeating the rare classes' pictures (each time differently
# augmented) and leaving the loss weights to complete the balance.
SAMPLING_MODES = ("shuffle", "sqrt", "balanced")
# The loss weights that, on top of a sampling mode, make every class count the same.
WEIGHTS_COMPLETING = {"shuffle": "balanced", "sqrt": "sqrt", "balanced": "none"}
# Whether Keras compiles the TensorFlow train and predict steps with XLA ("auto", Keras's
# default: where it can). Measured on the 2-core AMD EPYC, batch 32, 150 px: MobileNetV2
# fine-tuning from block_5_expand 1,727 ms per step with "auto" against 878 ms without
# XLA (its depthwise convolutions), and predicting ~2.4x slower with it; the custom CNN's
# epoch about the same either way (222 s "auto", 237 s without), so it keeps the default.
JIT_COMPILE = {"mobilenetv2": False, "cnn": "auto"}


@dataclass
class Recipe:
    arch: str = "mobilenetv2"
    input_size: tuple[int, int] = (150, 150)
    batch_size: int = 32
    head_epochs: int = 30  # on cached features: seconds per epoch
    head_lr: float = 1e-3
    fine_tune_epochs: int = 8
    fine_tune_lr: float = 2e-4  # low enough to keep the ImageNet filters, cosine-decayed to 0
    fine_tune_from: str = "block_5_expand"  # measured: as cheap per step as block_9 on this CPU
    # Also train the fine-tuned blocks' batch-norm, after restandardize_batch_norm gave the
    # folded layers real statistics (training.models). Off: batch-norm stays frozen.
    train_batch_norm: bool = False
    # Decoupled L2-SP (Li et al., ICML 2018): after every fine-tuning step, pull each
    # fine-tuned base weight back towards its ImageNet value by learning rate x this x
    # the gap, which damps the random walk Adam's noisy steps take away from the
    # pre-trained filters. 0: off.
    pull_to_start: float = 0.0
    cnn_epochs: int = 15
    cnn_lr: float = 1e-3
    dropout: float = 0.3
    label_smoothing: float = 0.0  # in fine-tuning; temperature scaling recalibrates afterwards
    color_augmentation: bool = False  # brightness and per-channel contrast (training.augment)
    # Also try the average of the last N epochs' weights; kept if it beats the best single
    # epoch on validation. 0 or 1: off.
    average_last_epochs: int = 0
    imbalance: str = "auto"  # auto: the mode with the best validation balanced accuracy in phase 1
    sampling: str = "shuffle"  # SAMPLING_MODES; with sampling, "auto" weights complete its balance
    # Logit-adjusted loss (Menon et al., ICLR 2021): train on logits + tau * log(class
    # prior), serve the plain logits. 0: off. With it, "auto" weights are "none".
    logit_adjustment: float = 0.0
    # Mixup (Zhang et al., ICLR 2018): train on convex blends of two augmented pictures
    # and of their labels, lambda ~ Beta(alpha, alpha), kept >= 0.5 so each blend still
    # mostly shows one picture. 0: off.
    mixup: float = 0.0
    time_budget_min: float = 58.0
    init_from: str | None = None  # a run folder to continue fine-tuning from (skips phase 1)
    seed: int = 7


# --- data ----------------------------------------------------------------------------


def load_split_arrays(
    data_dir: str, split_file: str, input_size: tuple[int, int], cache_dir: str | None, names: tuple[str, ...]
) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """Per split name: uint8 images, integer labels in CLASSES order, image ids."""
    split = read_split(split_file)
    arrays = {}
    for name in names:
        rows = split[split["split"] == name]
        ids = rows["image_id"].tolist()
        images = load_images(data_dir, ids, input_size, cache_dir)
        labels = np.array([CLASSES.index(code) for code in rows["dx"]], dtype=np.int64)
        arrays[name] = (images, labels, ids)
    return arrays


def class_weights(labels: np.ndarray, mode: str) -> np.ndarray:
    """Per-class loss weights, normalised so the average sample weight is 1.

    'balanced' (n / (k * n_c)) makes every class weigh the same in the loss, which
    is what balanced accuracy rewards; 'sqrt' is a milder compromise.
    """
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    counts = np.maximum(counts, 1.0)
    if mode == "none":
        weights = np.ones(len(CLASSES))
    elif mode == "balanced":
        weights = counts.sum() / (len(CLASSES) * counts)
    elif mode == "sqrt":
        weights = np.sqrt(counts.sum() / (len(CLASSES) * counts))
    else:
        raise ValueError(f"unknown imbalance mode {mode!r}")
    return weights / (weights[labels].mean())


def preset_weights(recipe: Recipe) -> str | None:
    """The loss weights the recipe settles without measuring; None: phase 1 chooses them."""
    if recipe.imbalance != "auto":
        return recipe.imbalance
    if recipe.logit_adjustment > 0:
        return "none"  # the adjusted loss does the balancing
    if recipe.sampling != "shuffle":
        return WEIGHTS_COMPLETING[recipe.sampling]
    return None


def logit_offsets(labels: np.ndarray, tau: float) -> np.ndarray:
    """tau * log of each class's share of the training labels (a class never seen gets the smallest)."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    counts = np.maximum(counts, 1.0)
    return (tau * np.log(counts / counts.sum())).astype(np.float32)


def with_logit_adjustment(model, offsets: np.ndarray):
    """A training-only view of ``model`` whose logits are shifted by ``offsets``.

    Training the shifted logits on the plain (unweighted) loss makes the frequent
    classes pay for their prior, so the plain logits that are served rank classes as
    balanced accuracy wants, without loss weights that make the rare pictures count 60
    times each. The shift is a frozen identity Dense layer with the offsets as bias:
    built-in layers only, and the served model never contains it.
    """
    import keras

    shift = keras.layers.Dense(len(CLASSES), trainable=False, name="logit_adjustment")
    shifted = keras.Model(model.inputs, shift(model.outputs[0]), name=f"{model.name}_adjusted")
    shift.set_weights([np.eye(len(CLASSES), dtype=np.float32), np.asarray(offsets, dtype=np.float32)])
    return shifted


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


def make_train_dataset(images, labels, weights, batch_size, augmentation, seed, sampling="shuffle", mixup=0.0):
    """Shuffled, augmented batches of (pixels, one-hot, sample weight).

    "shuffle": one pass over the pictures, reshuffled each epoch. Otherwise an endless
    stream in which each class appears with its ``sampling_shares``; fit() then takes
    ``steps_per_epoch`` batches an epoch. ``mixup`` > 0: each batch blended with a
    shuffled copy of itself (``mix_batch``).
    """
    import tensorflow as tf

    def slices(pictures, classes):
        return tf.data.Dataset.from_tensor_slices(
            (pictures, one_hot([CLASSES[i] for i in classes]), weights[classes].astype(np.float32))
        )

    if sampling == "shuffle":
        dataset = slices(images, labels).shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    else:
        shares = sampling_shares(labels, sampling)
        present = [c for c in range(len(CLASSES)) if shares[c] > 0]
        per_class = [
            slices(images[labels == c], labels[labels == c]).repeat().shuffle(int(np.sum(labels == c)), seed=seed + c)
            for c in present
        ]
        dataset = tf.data.Dataset.sample_from_datasets(per_class, weights=[shares[c] for c in present], seed=seed)
    dataset = dataset.batch(batch_size)
    # Augment whole batches in the input pipeline: it overlaps with the training step
    # and keeps the Random* layers out of the model that gets saved.
    dataset = dataset.map(
        lambda x, y, w: (augmentation(tf.cast(x, tf.float32), training=True), y, w),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if mixup > 0:
        dataset = dataset.map(lambda x, y, w: mix_batch(x, y, w, mixup), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def mix_batch(pixels, labels, weights, alpha: float):
    """Mixup within one batch: picture i blended with picture perm(i), labels and weights alike."""
    import tensorflow as tf

    count = tf.shape(pixels)[0]
    # Beta(alpha, alpha) from two Gamma draws; max(lam, 1 - lam) keeps picture i dominant.
    # With a small alpha both draws can underflow to 0: no blend then, rather than NaN.
    first, second = tf.random.gamma([count], alpha), tf.random.gamma([count], alpha)
    lam = tf.math.divide_no_nan(first, first + second)
    lam = tf.maximum(lam, 1.0 - lam)
    partner = tf.random.shuffle(tf.range(count))
    blend = lam[:, None, None, None]
    pixels = blend * pixels + (1.0 - blend) * tf.gather(pixels, partner)
    labels = lam[:, None] * labels + (1.0 - lam[:, None]) * tf.gather(labels, partner)
    weights = lam * weights + (1.0 - lam) * tf.gather(weights, partner)
    return pixels, labels, weights


def predict_logits(model, images: np.ndarray, arch: str, batch_size: int = 64) -> np.ndarray:
    """Logits for uint8 or float images, batched, augmentation-free."""
    model.jit_compile = JIT_COMPILE[arch]
    return model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)


# --- bookkeeping during training --------------------------------------------------------


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    recalls = [np.mean(predicted[labels == c] == c) for c in range(len(CLASSES)) if np.any(labels == c)]
    return float(np.mean(recalls))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def make_pull_to_start(variables, strength: float):
    """A callback that applies ``Recipe.pull_to_start`` to ``variables`` after every step."""
    import keras

    class PullToStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.starts = [keras.ops.copy(variable.value) for variable in variables]

        def on_train_batch_end(self, batch, logs=None):
            # The step just taken used the schedule's current rate (one step behind: negligible).
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)) * strength
            for variable, start in zip(variables, self.starts, strict=True):
                variable.assign(variable.value - rate * (variable.value - start))

    return PullToStart()


def make_validation_tracker(
    val_inputs, val_labels, deadline: float, phase: str, log, start=None, keep_last=0, scored_model=None
):
    """A callback that scores each epoch on validation, keeps the best weights, and
    stops before an epoch would run past the deadline (the time budget).

    ``start`` = (score, weights) of the model before training, when continuing a run:
    a continuation then never ends worse on validation than it began. ``keep_last``:
    also keep the weights of the last N epochs (``recent``), for weight averaging.
    ``scored_model``: the model to score and keep, when training runs through a view of it
    (``with_logit_adjustment``); by default the model being fitted."""
    from collections import deque

    import keras

    class ValidationTracker(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best_score, self.best_weights = start if start is not None else (-1.0, None)
            self.best_epoch = 0 if start is not None else -1
            self.history: list[dict] = []
            self.recent: deque = deque(maxlen=max(keep_last, 1))
            self.weight_average: dict | None = None  # set by fine_tune when it tried one
            self._epoch_start = time.time()

        @property
        def scored(self):
            return scored_model if scored_model is not None else self.model

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch_start = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logits = self.scored.predict(val_inputs, batch_size=64, verbose=0)
            score = balanced_accuracy(val_labels, logits.argmax(axis=1))
            entry = {
                "phase": phase,
                "epoch": epoch + 1,
                "loss": float((logs or {}).get("loss", float("nan"))),
                "val_loss": softmax_cross_entropy(logits, val_labels),
                "val_balanced_accuracy": score,
                "seconds": time.time() - self._epoch_start,
            }
            self.history.append(entry)
            log(json.dumps(entry))
            if keep_last > 1:
                self.recent.append((epoch + 1, self.scored.get_weights()))
            if score > self.best_score:
                self.best_score, self.best_epoch = score, epoch + 1
                self.best_weights = self.scored.get_weights()
            if time.time() + entry["seconds"] > deadline:
                log(f"{phase}: stopping after epoch {epoch + 1}, the next would pass the time budget")
                self.model.stop_training = True

    return ValidationTracker()


# --- training --------------------------------------------------------------------------


def train_head(head, features, labels, weights, val_features, val_labels, recipe, deadline, log):
    """Phase 1: the classifier head on cached, frozen-base features (logit-adjusted if the recipe says so)."""
    import keras

    adjusted = recipe.logit_adjustment > 0
    fitted = with_logit_adjustment(head, logit_offsets(labels, recipe.logit_adjustment)) if adjusted else head
    fitted.compile(
        optimizer=keras.optimizers.Adam(recipe.head_lr),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile=JIT_COMPILE["mobilenetv2"],
    )
    tracker = make_validation_tracker(val_features, val_labels, deadline, "head", log, scored_model=head)
    fitted.fit(
        features,
        one_hot([CLASSES[i] for i in labels]),
        sample_weight=weights[labels],
        batch_size=recipe.batch_size,
        epochs=recipe.head_epochs,
        callbacks=[tracker],
        verbose=0,
    )
    head.set_weights(tracker.best_weights)
    return tracker


def choose_imbalance_mode(head, features, labels, val_features, val_labels, recipe, log) -> dict[str, float]:
    """Phase-1 heads trained with each weighting; validation balanced accuracy of each.

    On cached features this costs seconds, so the choice is measured, not assumed.
    """
    import keras

    scores = {}
    for mode in IMBALANCE_MODES:
        trial = keras.models.clone_model(head)
        tracker = train_head(
            trial,
            features,
            labels,
            class_weights(labels, mode),
            val_features,
            val_labels,
            recipe,
            float("inf"),
            lambda _msg: None,
        )
        scores[mode] = tracker.best_score
        log(f"imbalance {mode}: best validation balanced accuracy {tracker.best_score:.4f}")
    return scores


def fine_tune(model, dataset, steps_per_epoch, val_images, val_labels, recipe, deadline, log, phase=None, offsets=None):
    """Phase 2 (or the CNN's only phase): the whole model on augmented images.

    ``offsets``: train through ``with_logit_adjustment``; ``model`` keeps the plain logits."""
    import keras

    fitted = model if offsets is None else with_logit_adjustment(model, offsets)

    epochs = recipe.fine_tune_epochs if recipe.arch == "mobilenetv2" else recipe.cnn_epochs
    lr = recipe.fine_tune_lr if recipe.arch == "mobilenetv2" else recipe.cnn_lr
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps_per_epoch, alpha=0.02)
    fitted.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing),
        jit_compile=JIT_COMPILE[recipe.arch],
    )
    phase = phase or ("fine_tune" if recipe.arch == "mobilenetv2" else "cnn")
    start = None
    if recipe.init_from:
        logits = model.predict(val_images.astype(np.float32), batch_size=64, verbose=0)
        start = (balanced_accuracy(val_labels, logits.argmax(axis=1)), model.get_weights())
        log(f"{phase}: starting from validation balanced accuracy {start[0]:.4f}")
    val_inputs = val_images.astype(np.float32)
    keep_last = recipe.average_last_epochs
    tracker = make_validation_tracker(val_inputs, val_labels, deadline, phase, log, start, keep_last, model)
    callbacks = [tracker]
    if recipe.pull_to_start > 0 and recipe.arch == "mobilenetv2":
        base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
        callbacks.append(make_pull_to_start(base.trainable_weights, recipe.pull_to_start))
    # Shuffled in tf.data; a sampled stream is endless, so the epoch is given in steps.
    endless = recipe.sampling != "shuffle"
    fitted.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch if endless else None,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    )
    model.set_weights(tracker.best_weights)
    if keep_last > 1 and len(tracker.recent) > 1:
        tracker.weight_average = try_weight_average(model, tracker, val_inputs, val_labels, phase, log)
    return tracker


# Pictures whose activations set the batch-norm statistics before batch-norm is trained:
# 512 x 25..5,625 positions per channel, and 18 s on the 2-core AMD EPYC.
BATCH_NORM_PICTURES = 512


def unfreeze_base(base, train_images: np.ndarray, recipe: Recipe, log) -> int:
    """Unfreeze the base from ``recipe.fine_tune_from`` up, batch-norm too if the recipe says so."""
    from training.models import restandardize_batch_norm, unfreeze_top

    if recipe.train_batch_norm:
        rng = np.random.default_rng(recipe.seed)
        chosen = rng.choice(len(train_images), min(BATCH_NORM_PICTURES, len(train_images)), replace=False)
        # The base takes pixels already scaled to [-1, 1] (the model's first layer does it).
        pictures = train_images[np.sort(chosen)].astype(np.float32) / 127.5 - 1.0
        t = time.time()
        count = restandardize_batch_norm(base, pictures)
        log(f"batch-norm: {count} layers given the statistics of {len(pictures)} pictures ({time.time() - t:.0f}s)")
    return unfreeze_top(base, recipe.fine_tune_from, batch_norm=recipe.train_batch_norm)


def try_weight_average(model, tracker, val_inputs, val_labels, phase, log) -> dict:
    """Average the weights of the tracker's last epochs; keep them if validation says so.

    Validation balanced accuracy jumps by a few points from one epoch to the next (a
    handful of dermatofibromas and vascular lesions decide it), so the single best
    epoch is partly luck; the average of the epochs around the end of a cosine
    schedule is a flatter, steadier solution. With batch-norm frozen (the default) the
    averaged weights need no statistics recomputed; with ``train_batch_norm`` the moving
    statistics are averaged too, an approximation that the validation score judges.
    """
    epochs = [epoch for epoch, _ in tracker.recent]
    averaged = [np.mean(layers, axis=0) for layers in zip(*(weights for _, weights in tracker.recent), strict=True)]
    model.set_weights(averaged)
    score = balanced_accuracy(val_labels, model.predict(val_inputs, batch_size=64, verbose=0).argmax(axis=1))
    chosen = score > tracker.best_score
    log(
        f"{phase}: average of epochs {epochs[0]}-{epochs[-1]}: validation balanced accuracy {score:.4f} "
        f"against {tracker.best_score:.4f} at epoch {tracker.best_epoch}: " + ("kept" if chosen else "not kept")
    )
    if chosen:
        tracker.best_score, tracker.best_weights = score, averaged
    else:
        model.set_weights(tracker.best_weights)
    return {"epochs": epochs, "val_balanced_accuracy": score, "kept": chosen}


def train(recipe: Recipe, data_dir: str, split_file: str, weights: str | None, cache_dir: str | None, out: Path, log):
    """Train one model per the recipe and save it with its run record into ``out``."""
    import keras
    import tensorflow as tf

    from training.augment import make_augmentation
    from training.models import build_custom_cnn, build_mobilenet_v2, feature_extractor

    started = time.time()
    deadline = started + recipe.time_budget_min * 60
    keras.utils.set_random_seed(recipe.seed)
    out.mkdir(parents=True, exist_ok=True)

    arrays = load_split_arrays(data_dir, split_file, recipe.input_size, cache_dir, ("train", "val"))
    train_images, train_labels, _ = arrays["train"]
    val_images, val_labels, _ = arrays["val"]
    log(f"loaded {len(train_images)} train / {len(val_images)} val images in {time.time() - started:.0f}s")

    history: list[dict] = []
    run: dict = {"recipe": asdict(recipe)}
    offsets = logit_offsets(train_labels, recipe.logit_adjustment) if recipe.logit_adjustment > 0 else None
    if offsets is not None:
        run["logit_offsets"] = dict(zip(CLASSES, map(float, offsets), strict=True))
    previous: dict = {}
    if recipe.init_from:
        # Continue fine-tuning a saved run: same weighting, history and clock carried over,
        # so the run record describes the whole recipe.
        previous = json.loads((Path(recipe.init_from) / RUN_FILENAME).read_text(encoding="utf-8"))
        model = keras.saving.load_model(Path(recipe.init_from) / LOGITS_MODEL_FILENAME)
        mode = previous["imbalance"]
        weights_per_class = class_weights(train_labels, mode)
        history += previous["history"]
        run.update({key: previous[key] for key in previous if key not in ("recipe", "history", "hardware")})
        run["previous_recipe"] = previous["recipe"]
        if recipe.arch == "mobilenetv2":
            base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
            run["fine_tuned_layers"] = unfreeze_base(base, train_images, recipe, log)
    elif recipe.arch == "mobilenetv2":
        model, base, head = build_mobilenet_v2(recipe.input_size, weights, recipe.dropout)
        extractor = feature_extractor(model)
        t = time.time()
        train_features = predict_logits(extractor, train_images, recipe.arch)
        val_features = predict_logits(extractor, val_images, recipe.arch)
        log(f"cached frozen-base features in {time.time() - t:.0f}s")

        mode = preset_weights(recipe)
        if mode is None:
            scores = choose_imbalance_mode(head, train_features, train_labels, val_features, val_labels, recipe, log)
            mode = max(scores, key=scores.get)
            run["imbalance_comparison_val_balanced_accuracy"] = scores
        weights_per_class = class_weights(train_labels, mode)
        run["imbalance"] = mode
        tracker = train_head(
            head, train_features, train_labels, weights_per_class, val_features, val_labels, recipe, deadline, log
        )
        history += tracker.history
        run["head_best_epoch"], run["head_val_balanced_accuracy"] = tracker.best_epoch, tracker.best_score
        run["phase1_seconds"] = time.time() - started
        run["fine_tuned_layers"] = unfreeze_base(base, train_images, recipe, log)
    else:
        model = build_custom_cnn(recipe.input_size, dropout=0.4)
        mode = preset_weights(recipe) or WEIGHTS_COMPLETING["shuffle"]
        weights_per_class = class_weights(train_labels, mode)
        run["imbalance"] = mode

    dataset = make_train_dataset(
        train_images,
        train_labels,
        weights_per_class,
        recipe.batch_size,
        make_augmentation(seed=recipe.seed, color=recipe.color_augmentation),
        recipe.seed,
        recipe.sampling,
        recipe.mixup,
    )
    steps = int(np.ceil(len(train_images) / recipe.batch_size))
    phase = "fine_tune_continued" if recipe.init_from else None
    tracker = fine_tune(model, dataset, steps, val_images, val_labels, recipe, deadline, log, phase, offsets)
    history += tracker.history
    run["best_epoch"], run["val_balanced_accuracy"] = tracker.best_epoch, tracker.best_score
    if tracker.weight_average is not None:
        run["weight_average"] = tracker.weight_average
        if tracker.weight_average["kept"]:
            run["best_epoch"] = None  # no single epoch: the average of weight_average["epochs"]
    run["epochs_run"] = len(tracker.history)
    run["class_weights"] = dict(zip(CLASSES, map(float, weights_per_class), strict=True))
    run["train_seconds"] = time.time() - started + previous.get("train_seconds", 0.0)
    run["hardware"] = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    run["history"] = history
    model.save(out / LOGITS_MODEL_FILENAME)
    (out / RUN_FILENAME).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    log(f"saved {out / LOGITS_MODEL_FILENAME}; best epoch {tracker.best_epoch}, {run['train_seconds'] / 60:.1f} min")
    return model, run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train a HAM10000 lesion classifier.")
    parser.add_argument("--arch", choices=("mobilenetv2", "cnn"), default="mobilenetv2")
    parser.add_argument("--data-dir", default="../shared/data/ham10000")
    parser.add_argument("--split-file", default=str(DEFAULT_SPLIT_FILE))
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="'imagenet' (downloads), a path to the no-top .h5 file, or 'none'",
    )
    parser.add_argument("--cache-dir", default="training_runs/cache", help="decoded-image cache; '' for none")
    parser.add_argument("--out", required=True, help="run folder for the logits model and run.json")
    parser.add_argument("--input-size", type=int, nargs=2, default=[150, 150], metavar=("H", "W"))
    defaults = Recipe()
    for name in (
        "batch_size",
        "head_epochs",
        "fine_tune_epochs",
        "cnn_epochs",
        "time_budget_min",
        "head_lr",
        "fine_tune_lr",
        "cnn_lr",
        "dropout",
        "label_smoothing",
        "pull_to_start",
        "logit_adjustment",
        "mixup",
        "average_last_epochs",
        "seed",
    ):
        value = getattr(defaults, name)
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--fine-tune-from", default=defaults.fine_tune_from)
    parser.add_argument(
        "--color-augmentation", action=argparse.BooleanOptionalAction, default=defaults.color_augmentation
    )
    parser.add_argument("--train-batch-norm", action=argparse.BooleanOptionalAction, default=defaults.train_batch_norm)
    parser.add_argument("--imbalance", choices=("auto", *IMBALANCE_MODES), default="auto")
    parser.add_argument("--sampling", choices=SAMPLING_MODES, default=defaults.sampling)
    parser.add_argument("--init-from", help="run folder to continue fine-tuning from (phase 1 is skipped)")
    args = parser.parse_args(argv)

    recipe = Recipe(
        arch=args.arch,
        input_size=tuple(args.input_size),
        batch_size=args.batch_size,
        head_epochs=args.head_epochs,
        head_lr=args.head_lr,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_lr=args.fine_tune_lr,
        fine_tune_from=args.fine_tune_from,
        train_batch_norm=args.train_batch_norm,
        cnn_epochs=args.cnn_epochs,
        cnn_lr=args.cnn_lr,
        dropout=args.dropout,
        label_smoothing=args.label_smoothing,
        pull_to_start=args.pull_to_start,
        logit_adjustment=args.logit_adjustment,
        mixup=args.mixup,
        average_last_epochs=args.average_last_epochs,
        color_augmentation=args.color_augmentation,
        imbalance=args.imbalance,
        sampling=args.sampling,
        time_budget_min=args.time_budget_min,
        seed=args.seed,
        init_from=args.init_from,
    )
    weights = None if args.weights == "none" else args.weights

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    train(recipe, args.data_dir, args.split_file, weights, args.cache_dir or None, Path(args.out), log)


if __name__ == "__main__":
    main()
