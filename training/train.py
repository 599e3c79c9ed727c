"""Train a lesion classifier on the lesion-grouped HAM10000 split.

Pipeline order: load the cached images of the train and validation splits, weigh
the classes, build tf.data pipelines (augmentation in training only), build the
model, train, keep the epoch with the best validation balanced accuracy, save the
logits model and what happened into a run folder. ``training.evaluate`` then
calibrates and scores the run, and ``training.export`` ships it.

    python -m training.train --arch mobilenetv2 --out training_runs/mnv2 \\
        --weights ../shared/data/imagenet/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
    python -m training.train --arch cnn --out training_runs/cnn --time-budget-min 12

Every ``Recipe`` field is an option of the command (``--help`` lists them). Options
tried and not shipped live in ``training/experiments/``. Nothing here looks at the
test split.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from training.classes import CLASSES
from training.data import DEFAULT_SPLIT_FILE, load_images, one_hot, read_split
from training.preprocessing import DEFAULT_GEOMETRY, GEOMETRIES, SOURCE_SIZE

LOGITS_MODEL_FILENAME = "model_logits.keras"
RUN_FILENAME = "run.json"
ARCHITECTURES = ("mobilenetv2", "cnn")
IMBALANCE_MODES = ("none", "sqrt", "balanced")
# Whether Keras compiles the train and predict steps with XLA ("auto", Keras's default:
# where it can). XLA runs MobileNetV2's depthwise convolutions about twice as slowly on
# CPU, in training and in prediction; the custom CNN runs about as fast either way and
# keeps the default.
JIT_COMPILE = {"mobilenetv2": False, "cnn": "auto"}
NO_DEADLINE = float("inf")  # a time.time() never reached
PREDICT_BATCH = 64  # pictures per predict() batch when scoring: no training state, so larger than a step's


def option(default, help: str, choices: tuple | None = None):
    """A Recipe field and how ``python -m training.train`` offers it."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class Recipe:
    """How to train one model: every field is an option of ``python -m training.train``."""

    arch: str = option("mobilenetv2", "the model (training.models)", ARCHITECTURES)
    input_size: tuple[int, int] = option((150, 150), "model input, height and width")
    geometry: str = option(
        DEFAULT_GEOMETRY, "how a picture becomes the model's input (training.preprocessing)", tuple(GEOMETRIES)
    )
    framing: bool = option(
        False,
        "fine-tune on pictures reframed and recaptured as other centres' and dermatoscopes' (training.framing): "
        "zoomed in and out with a vignette, off-centre, another aspect, colour, blur, JPEG",
    )
    batch_size: int = option(32, "pictures per training step")
    head_epochs: int = option(30, "phase 1: epochs of the head on cached frozen-base features (seconds each)")
    head_lr: float = option(1e-3, "phase 1 learning rate (Adam)")
    fine_tune_epochs: int = option(8, "phase 2: epochs of the unfrozen top of MobileNetV2 on augmented pictures")
    fine_tune_lr: float = option(2e-4, "phase 2 learning rate, cosine-decayed: low enough to keep the ImageNet filters")
    fine_tune_from: str = option(
        "block_5_expand", "first MobileNetV2 layer fine-tuned; 'Conv1', the whole base, scored lower"
    )
    cnn_epochs: int = option(15, "epochs of the custom CNN")
    cnn_lr: float = option(1e-3, "custom CNN learning rate, cosine-decayed")
    dropout: float = option(0.3, "dropout before MobileNetV2's dense head")
    average_last_epochs: int = option(
        0, "also try the average of the last N epochs' weights, kept if it beats the best epoch on validation; 0: off"
    )
    imbalance: str = option(
        "auto",
        "class weights in the loss; auto: the mode with the best validation balanced accuracy in phase 1",
        ("auto", *IMBALANCE_MODES),
    )
    logit_adjustment: float = option(
        0.0,
        "logit-adjusted loss (Menon et al., ICLR 2021): train on logits + tau * log(class prior), "
        "serve the plain logits; with it, auto weights are none. 0: off",
    )
    mixup: float = option(
        0.0,
        "mixup (Zhang et al., ICLR 2018): train on blends of two augmented pictures and of their labels, "
        "lambda ~ Beta(alpha, alpha) kept >= 0.5. 0: off",
    )
    time_budget_min: float = option(58.0, "stop before an epoch that would end past this many minutes")
    init_from: str | None = option(None, "run folder to continue fine-tuning from (phase 1 is skipped)")
    seed: int = option(7, "seed of the weights, the shuffling and the augmentation")

    # --- the parts training/experiments/ varies; these are the shipped ones ----------------

    def preset_weights(self) -> str | None:
        """The loss weights the recipe settles without measuring; None: phase 1 chooses them."""
        if self.imbalance != "auto":
            return self.imbalance
        if self.logit_adjustment > 0:
            return "none"  # the adjusted loss does the balancing
        return None

    def augmentation(self):
        """The Random* layers of the training pipeline."""
        from training.augment import make_augmentation

        return make_augmentation(seed=self.seed)

    def wants_masks(self) -> bool:
        """Whether ``training_pictures`` needs the train split's lesion masks."""
        return False

    def training_pictures(self, images: np.ndarray, labels: np.ndarray, weights: np.ndarray, masks=None):
        """Unbatched (pixels, one-hot, sample weight) for fine-tuning, and whether the stream is
        endless (fit() then counts an epoch in steps): here every picture once an epoch, reshuffled.

        With ``framing``, ``images`` are at the training scale (SOURCE_SIZE) and each is
        reframed (training.framing) before the geometry makes it the model's input; else they
        are the model's inputs already. ``masks``: the pictures' lesion masks, when
        ``wants_masks``."""
        import tensorflow as tf

        pictures = picture_slices(images, labels, weights)
        pictures = pictures.shuffle(len(images), seed=self.seed, reshuffle_each_iteration=True)
        if self.framing:
            pictures = pictures.map(
                lambda x, y, w: (self.reframed_input(tf.cast(x, tf.float32)), y, w),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        return pictures, False

    def reframed_input(self, picture):
        """A training-scale picture reframed (training.framing), then made the model's input."""
        from training.framing import reframe, to_input

        return to_input(reframe(picture), self.input_size, self.geometry)

    def unfreeze(self, base, train_images: np.ndarray, log) -> int:
        """Unfreeze MobileNetV2 from ``fine_tune_from`` up; return how many layers train."""
        from training.models import unfreeze_top

        return unfreeze_top(base, self.fine_tune_from)

    def fine_tune_loss(self):
        import keras

        return keras.losses.CategoricalCrossentropy(from_logits=True)

    def fine_tune_callbacks(self, model) -> list:
        """Callbacks fine-tuning adds to the validation, best-epoch and time-budget ones."""
        return []


def recipe_parser(recipe_type: type[Recipe] = Recipe, description: str = "") -> argparse.ArgumentParser:
    """The command line of ``python -m training.train``: the data, and one option per Recipe field."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/ham10000")
    parser.add_argument("--split-file", default=str(DEFAULT_SPLIT_FILE))
    parser.add_argument(
        "--weights", default="imagenet", help="'imagenet' (downloads), a path to the no-top .h5 file, or 'none'"
    )
    parser.add_argument("--cache-dir", default="training_runs/cache", help="decoded-image cache; '' for none")
    parser.add_argument("--out", required=True, help="run folder for the logits model and run.json")
    types = typing.get_type_hints(recipe_type)
    for recipe_field in fields(recipe_type):
        name, kind = "--" + recipe_field.name.replace("_", "-"), types[recipe_field.name]
        described = {"default": recipe_field.default, "help": recipe_field.metadata["help"]}
        if kind is bool:
            parser.add_argument(name, action=argparse.BooleanOptionalAction, **described)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(name, type=int, nargs=2, metavar=("H", "W"), **described)
        else:
            (value_type,) = [t for t in typing.get_args(kind) if t is not type(None)] or [kind]  # X | None: X
            parser.add_argument(name, type=value_type, choices=recipe_field.metadata["choices"], **described)
    return parser


def recipe_from(args: argparse.Namespace, recipe_type: type[Recipe] = Recipe) -> Recipe:
    values = {recipe_field.name: getattr(args, recipe_field.name) for recipe_field in fields(recipe_type)}
    return recipe_type(**{**values, "input_size": tuple(values["input_size"])})


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch, as training reports it (``on_epoch``) and the run record keeps it."""

    phase: str  # "head", "fine_tune", "fine_tune_continued" or "cnn"
    epoch: int  # 1-based, within the phase
    loss: float  # the training loss as trained (weighted or logit-adjusted)
    val_loss: float  # plain cross-entropy of the model's own logits on validation
    val_balanced_accuracy: float
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.phase} epoch {self.epoch}: loss {self.loss:.4f}, validation loss {self.val_loss:.4f}, "
            f"balanced accuracy {self.val_balanced_accuracy:.4f} ({self.seconds:.0f}s)"
        )


@dataclass
class Phase:
    """What one phase of training kept: its epochs, and the validation score of the weights it ended with."""

    history: list[EpochReport]
    best_epoch: int  # 1-based; 0: no epoch beat the weights it started from (a continued run)
    best_score: float
    weight_average: dict | None = None  # try_weight_average's verdict, when the recipe asked for one


# --- data ----------------------------------------------------------------------------


def load_split_arrays(
    data_dir: str,
    split_file: str,
    input_size: tuple[int, int],
    cache_dir: str | None,
    names: tuple[str, ...],
    geometry: str = DEFAULT_GEOMETRY,
) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """Per split name: uint8 images through the serving path, integer labels in CLASSES order, image ids."""
    split = read_split(split_file)
    arrays = {}
    for name in names:
        rows = split[split["split"] == name]
        ids = rows["image_id"].tolist()
        images = load_images(data_dir, ids, input_size, cache_dir, geometry)
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


def picture_slices(images: np.ndarray, labels: np.ndarray, weights: np.ndarray):
    """A tf.data stream of (pixels, one-hot, sample weight), one picture an element."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(
        (images, one_hot([CLASSES[i] for i in labels]), weights[labels].astype(np.float32))
    )


def make_train_dataset(pictures, batch_size: int, augmentation, mixup: float = 0.0):
    """Augmented batches of an unbatched (pixels, one-hot, sample weight) stream
    (``Recipe.training_pictures``); ``mixup`` > 0: each batch blended with a shuffled copy
    of itself (``mix_batch``)."""
    import tensorflow as tf

    dataset = pictures.batch(batch_size)
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


def predict_logits(model, images: np.ndarray, arch: str, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Logits for uint8 or float images, batched, augmentation-free."""
    model.jit_compile = JIT_COMPILE[arch]
    return model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)


# --- scoring during training ---------------------------------------------------------------


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    recalls = [np.mean(predicted[labels == c] == c) for c in range(len(CLASSES)) if np.any(labels == c)]
    return float(np.mean(recalls))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_keeping_the_best(
    fitted, *, scored, validation, phase: str, epochs: int, deadline: float, log, on_epoch, extra=(), **fit
) -> Phase:
    """``fitted.fit(**fit)``, scoring ``scored`` on ``validation`` (inputs, labels) after every
    epoch and ending with the weights of its best epoch; stops before an epoch would pass
    ``deadline``.

    ``scored`` is ``fitted`` itself or the model under a training-only view of it
    (``with_logit_adjustment``): the one whose plain logits are served.
    """
    import keras

    from training.callbacks import Deadline, ValidationScore

    score = ValidationScore(scored, *validation, phase, on_epoch)
    # Patience of the whole phase: EarlyStopping here only keeps the best epoch's weights.
    best = keras.callbacks.EarlyStopping(
        monitor=ValidationScore.MONITOR, mode="max", patience=epochs, restore_best_weights=True
    )
    fitted.fit(epochs=epochs, callbacks=[score, *extra, best, Deadline(deadline, phase, log)], verbose=0, **fit)
    return Phase(score.history, best.best_epoch + 1, float(best.best))


# --- training --------------------------------------------------------------------------


def train_head(head, features, labels, weights, val_features, val_labels, recipe, deadline, log, on_epoch) -> Phase:
    """Phase 1: the classifier head on cached, frozen-base features (logit-adjusted if the recipe says so)."""
    import keras

    adjusted = recipe.logit_adjustment > 0
    fitted = with_logit_adjustment(head, logit_offsets(labels, recipe.logit_adjustment)) if adjusted else head
    fitted.compile(
        optimizer=keras.optimizers.Adam(recipe.head_lr),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile=JIT_COMPILE["mobilenetv2"],
    )
    return fit_keeping_the_best(
        fitted,
        scored=head,
        validation=(val_features, val_labels),
        phase="head",
        epochs=recipe.head_epochs,
        deadline=deadline,
        log=log,
        on_epoch=on_epoch,
        x=features,
        y=one_hot([CLASSES[i] for i in labels]),
        sample_weight=weights[labels],
        batch_size=recipe.batch_size,
    )


def choose_imbalance_mode(head, features, labels, val_features, val_labels, recipe, log) -> dict[str, float]:
    """Phase-1 heads trained with each weighting; validation balanced accuracy of each.

    On cached features this costs seconds, so the choice is measured, not assumed.
    """
    import keras

    def silent(_report: EpochReport) -> None:
        pass

    scores = {}
    for mode in IMBALANCE_MODES:
        trial, weights = keras.models.clone_model(head), class_weights(labels, mode)
        tried = train_head(trial, features, labels, weights, val_features, val_labels, recipe, NO_DEADLINE, log, silent)
        scores[mode] = tried.best_score
        log(f"imbalance {mode}: best validation balanced accuracy {tried.best_score:.4f}")
    return scores


def fine_tune(model, train, val, weights, recipe, phase: str, offsets, *, deadline, log, on_epoch, masks=None) -> Phase:
    """Phase 2 (or the CNN's only phase): the whole model on augmented ``train`` pictures
    (images, labels), with the class ``weights``, scored on ``val`` (images, labels);
    ``masks``: the train pictures' lesion masks, for a recipe that ``wants_masks``.

    ``offsets``: train through ``with_logit_adjustment``; ``model`` keeps the plain logits.
    A continued run (``recipe.init_from``) never ends worse on validation than it began."""
    import keras

    from training.callbacks import RecentWeights

    augmentation = recipe.augmentation()
    pictures, endless = recipe.training_pictures(*train, weights, masks)
    dataset = make_train_dataset(pictures, recipe.batch_size, augmentation, recipe.mixup)
    steps_per_epoch = int(np.ceil(len(train[0]) / recipe.batch_size))

    fitted = model if offsets is None else with_logit_adjustment(model, offsets)
    epochs = recipe.fine_tune_epochs if recipe.arch == "mobilenetv2" else recipe.cnn_epochs
    lr = recipe.fine_tune_lr if recipe.arch == "mobilenetv2" else recipe.cnn_lr
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps_per_epoch, alpha=0.02)
    fitted.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=recipe.fine_tune_loss(),
        jit_compile=JIT_COMPILE[recipe.arch],
    )
    val_inputs, val_labels = val[0].astype(np.float32), val[1]
    start = None
    if recipe.init_from:
        logits = model.predict(val_inputs, batch_size=PREDICT_BATCH, verbose=0)
        start = (balanced_accuracy(val_labels, logits.argmax(axis=1)), model.get_weights())
        log(f"{phase}: starting from validation balanced accuracy {start[0]:.4f}")
    recent = RecentWeights(model, recipe.average_last_epochs)
    extra = [*([recent] if recipe.average_last_epochs > 1 else []), *recipe.fine_tune_callbacks(model)]
    result = fit_keeping_the_best(
        fitted,
        scored=model,
        validation=(val_inputs, val_labels),
        phase=phase,
        epochs=epochs,
        deadline=deadline,
        log=log,
        on_epoch=on_epoch,
        extra=extra,
        x=dataset,
        steps_per_epoch=steps_per_epoch if endless else None,  # an endless stream's epoch is given in steps
        shuffle=False,  # shuffled in tf.data
    )
    if start is not None and not result.best_score > start[0]:
        model.set_weights(start[1])
        result.best_epoch, result.best_score = 0, start[0]
    if len(recent.kept) > 1:
        result.weight_average = try_weight_average(model, recent.kept, result, val_inputs, val_labels, phase, log)
    return result


def try_weight_average(model, recent, result: Phase, val_inputs, val_labels, phase_name, log) -> dict:
    """Average the weights of the last epochs (``recent``: (epoch, weights) pairs) into
    ``model``; keep them if validation says so, else leave the model as it was.

    Validation balanced accuracy jumps by a few points from one epoch to the next (a
    handful of dermatofibromas and vascular lesions decide it), so the single best
    epoch is partly luck; the average of the epochs around the end of a cosine
    schedule is a flatter, steadier solution. With batch-norm frozen the averaged
    weights need no statistics recomputed.
    """
    kept_weights = model.get_weights()
    epochs = [epoch for epoch, _ in recent]
    averaged = [np.mean(layers, axis=0) for layers in zip(*(weights for _, weights in recent), strict=True)]
    model.set_weights(averaged)
    logits = model.predict(val_inputs, batch_size=PREDICT_BATCH, verbose=0)
    score = balanced_accuracy(val_labels, logits.argmax(axis=1))
    chosen = score > result.best_score
    log(
        f"{phase_name}: average of epochs {epochs[0]}-{epochs[-1]}: validation balanced accuracy {score:.4f} "
        f"against {result.best_score:.4f} at epoch {result.best_epoch}: " + ("kept" if chosen else "not kept")
    )
    if chosen:
        result.best_score = score
    else:
        model.set_weights(kept_weights)
    return {"epochs": epochs, "val_balanced_accuracy": score, "kept": chosen}


def train(
    recipe: Recipe,
    data_dir: str,
    split_file: str,
    weights: str | None,
    cache_dir: str | None,
    out: Path,
    log: Callable[[str], None],
    on_epoch: Callable[[EpochReport], None] | None = None,
):
    """Train one model per the recipe and save it with its run record into ``out``.

    ``log`` gets what happens in words; ``on_epoch`` every finished epoch (by default
    ``log`` gets those too)."""
    import keras
    import tensorflow as tf

    from training.models import build_custom_cnn, build_mobilenet_v2, feature_extractor

    on_epoch = on_epoch or (lambda report: log(str(report)))
    started = time.time()
    deadline = started + recipe.time_budget_min * 60
    keras.utils.set_random_seed(recipe.seed)
    out.mkdir(parents=True, exist_ok=True)

    arrays = load_split_arrays(data_dir, split_file, recipe.input_size, cache_dir, ("train", "val"), recipe.geometry)
    train_images, train_labels, _ = arrays["train"]
    val_images, val_labels, _ = arrays["val"]
    # Reframing works on the pictures at the training scale, before the geometry.
    tuned_images = (
        load_split_arrays(data_dir, split_file, SOURCE_SIZE, cache_dir, ("train",))["train"][0]
        if recipe.framing
        else train_images
    )
    masks = None
    if recipe.wants_masks():
        from training.background import load_masks

        if not recipe.framing:
            raise ValueError("lesion masks are used on training-scale pictures: this recipe needs --framing")
        masks = load_masks(data_dir, arrays["train"][2], SOURCE_SIZE)
    log(f"loaded {len(train_images)} train / {len(val_images)} val images in {time.time() - started:.0f}s")

    history: list[EpochReport] = []
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
        history += [EpochReport(**entry) for entry in previous["history"]]
        run.update({key: previous[key] for key in previous if key not in ("recipe", "history", "hardware")})
        run["previous_recipe"] = previous["recipe"]
        if recipe.arch == "mobilenetv2":
            base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
            run["fine_tuned_layers"] = recipe.unfreeze(base, train_images, log)
    elif recipe.arch == "mobilenetv2":
        model, base, head = build_mobilenet_v2(recipe.input_size, weights, recipe.dropout)
        extractor = feature_extractor(model)
        t = time.time()
        train_features = predict_logits(extractor, train_images, recipe.arch)
        val_features = predict_logits(extractor, val_images, recipe.arch)
        log(f"cached frozen-base features in {time.time() - t:.0f}s")

        mode = recipe.preset_weights()
        if mode is None:
            scores = choose_imbalance_mode(head, train_features, train_labels, val_features, val_labels, recipe, log)
            mode = max(scores, key=scores.get)
            run["imbalance_comparison_val_balanced_accuracy"] = scores
        weights_per_class = class_weights(train_labels, mode)
        run["imbalance"] = mode
        head_phase = train_head(
            head, train_features, train_labels, weights_per_class, val_features, val_labels, recipe, deadline, log,
            on_epoch,
        )  # fmt: skip
        history += head_phase.history
        run["head_best_epoch"], run["head_val_balanced_accuracy"] = head_phase.best_epoch, head_phase.best_score
        run["phase1_seconds"] = time.time() - started
        run["fine_tuned_layers"] = recipe.unfreeze(base, train_images, log)
    else:
        model = build_custom_cnn(recipe.input_size, dropout=0.4)
        mode = recipe.preset_weights() or "balanced"
        weights_per_class = class_weights(train_labels, mode)
        run["imbalance"] = mode

    phase_name = "fine_tune_continued" if recipe.init_from else "fine_tune" if recipe.arch == "mobilenetv2" else "cnn"
    phase = fine_tune(
        model,
        (tuned_images, train_labels),
        (val_images, val_labels),
        weights_per_class,
        recipe,
        phase_name,
        offsets,
        deadline=deadline,
        log=log,
        on_epoch=on_epoch,
        masks=masks,
    )
    history += phase.history
    run["best_epoch"], run["val_balanced_accuracy"] = phase.best_epoch, phase.best_score
    if phase.weight_average is not None:
        run["weight_average"] = phase.weight_average
        if phase.weight_average["kept"]:
            run["best_epoch"] = None  # no single epoch: the average of weight_average["epochs"]
    run["epochs_run"] = len(phase.history)
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
    run["history"] = [asdict(report) for report in history]
    model.save(out / LOGITS_MODEL_FILENAME)
    (out / RUN_FILENAME).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    log(f"saved {out / LOGITS_MODEL_FILENAME}; best epoch {phase.best_epoch}, {run['train_seconds'] / 60:.1f} min")
    return model, run


def main(argv: list[str] | None = None, recipe_type: type[Recipe] = Recipe) -> None:
    args = recipe_parser(recipe_type, "Train a HAM10000 lesion classifier.").parse_args(argv)
    weights = None if args.weights == "none" else args.weights

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    train(recipe_from(args, recipe_type), args.data_dir, args.split_file, weights, args.cache_dir or None,
          Path(args.out), log)  # fmt: skip


if __name__ == "__main__":
    main()
