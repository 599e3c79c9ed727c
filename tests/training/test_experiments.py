"""The options tried and not shipped (training/experiments/): each still does what docs/MODEL_CARD.md says."""

from __future__ import annotations

from dataclasses import asdict, fields

import numpy as np
import pytest

INPUT_SIZE = (32, 32)


def test_with_no_experiment_on_it_is_the_shipped_recipe():
    from training.experiments.recipe import ExperimentRecipe
    from training.train import Recipe, recipe_from, recipe_parser

    shipped = {field.name for field in fields(Recipe)}
    experiment = ExperimentRecipe()
    assert {key: value for key, value in asdict(experiment).items() if key in shipped} == asdict(Recipe())
    assert experiment.preset_weights() is None and experiment.fine_tune_callbacks(None) == []

    args = recipe_parser(ExperimentRecipe).parse_args(["--out", "x", "--sampling", "sqrt", "--train-batch-norm"])
    parsed = recipe_from(args, ExperimentRecipe)
    assert (parsed.sampling, parsed.train_batch_norm, parsed.pull_to_start) == ("sqrt", True, 0.0)


def test_restandardized_batch_norm_computes_the_same_and_can_be_trained():
    """Folded batch-norm (statistics 0 and 1) gets its inputs' statistics, the function unchanged.

    On the pictures the statistics came from, batch statistics equal the moving ones, so
    a trainable batch-norm in training mode then gives the inference-mode features."""
    from training.experiments.recipe import restandardize_batch_norm
    from training.models import build_mobilenet_v2, feature_extractor, unfreeze_top

    model, base, _ = build_mobilenet_v2(INPUT_SIZE, weights=None)
    extractor = feature_extractor(model)
    pictures = np.random.default_rng(1).uniform(0, 255, (16, *INPUT_SIZE, 3)).astype(np.float32)
    before = np.asarray(extractor(pictures, training=False))

    assert restandardize_batch_norm(base, pictures / 127.5 - 1.0, batch_size=5) == 52
    first = base.get_layer("bn_Conv1")
    assert not np.allclose(first.moving_variance.numpy(), 1.0)
    np.testing.assert_allclose(np.asarray(extractor(pictures, training=False)), before, rtol=1e-4, atol=1e-5)

    unfrozen = unfreeze_top(base, "block_15_expand", batch_norm=True)
    assert base.get_layer("block_15_expand_BN").trainable and not first.trainable
    # Blocks 15 and 16 have three batch-norms each, then Conv_1_bn.
    assert unfrozen == unfreeze_top(base, "block_15_expand") + 7
    unfreeze_top(base, "block_15_expand", batch_norm=True)
    np.testing.assert_allclose(np.asarray(extractor(pictures, training=True)), before, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("mode", ["sqrt", "balanced"])
def test_class_resampling_draws_each_class_as_often_as_its_share(mode):
    from training.experiments.recipe import resampled_pictures, sampling_shares
    from training.train import make_train_dataset

    counts = [400, 100, 64, 36, 16, 9, 4]
    labels = np.repeat(np.arange(7), counts)
    index = np.arange(len(labels))
    images = np.stack([labels, index // 256, index % 256], axis=1).astype(np.uint8).reshape(-1, 1, 1, 3)
    weights = np.linspace(1.0, 2.0, 7)

    def unchanged(x, training):
        return x

    dataset = make_train_dataset(resampled_pictures(images, labels, weights, mode, seed=1), 50, unchanged)
    drawn, drawn_weights, pictures = [], [], []
    for x, y, w in dataset.take(120):
        drawn.append(np.argmax(y, axis=1))
        drawn_weights.append(w)
        pictures.append(np.asarray(x[:, 0, 0], dtype=np.int64))
    drawn = np.concatenate(drawn)

    expected = np.sqrt(counts) / np.sqrt(counts).sum() if mode == "sqrt" else np.full(7, 1 / 7)
    np.testing.assert_allclose(sampling_shares(labels, mode), expected)
    np.testing.assert_allclose(np.bincount(drawn, minlength=7) / len(drawn), expected, atol=0.02)
    pictures = np.concatenate(pictures)
    drawn_index = pictures[:, 1] * 256 + pictures[:, 2]
    np.testing.assert_array_equal(labels[drawn_index], drawn)  # each label stays with its picture
    np.testing.assert_array_equal(pictures[:, 0], drawn)
    np.testing.assert_allclose(np.concatenate(drawn_weights), weights[drawn])
    # The rare classes' pictures are repeated, all of them, not the same few.
    for c in range(7):
        assert set(drawn_index[drawn == c]) == set(np.flatnonzero(labels == c)) or counts[c] > 50


def test_a_resampled_run_completes_the_balance_with_its_loss_weights(tiny_dataset, tiny_split, tmp_path):
    from training.experiments.recipe import ExperimentRecipe
    from training.train import train

    recipe = ExperimentRecipe(arch="cnn", input_size=INPUT_SIZE, batch_size=8, cnn_epochs=1, sampling="sqrt")
    _, run = train(recipe, str(tiny_dataset["data_dir"]), str(tiny_split["path"]), None, None, tmp_path, print)

    assert run["imbalance"] == "sqrt"  # sqrt sampling x sqrt weights: every class counts the same
    assert run["recipe"]["sampling"] == "sqrt"
    assert [entry["phase"] for entry in run["history"]] == ["cnn"]


@pytest.mark.parametrize(("rate", "expect_moved"), [(0.0, True), (1.0, False)])
def test_pull_to_start_draws_the_weights_back_to_where_fine_tuning_began(rate, expect_moved):
    """At a pull of learning rate x strength = 1 every step ends where training began."""
    import keras

    from training.experiments.recipe import PullToStart

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    start = [w.copy() for w in model.get_weights()]
    learning_rate = 0.1
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    callbacks = [PullToStart(model.trainable_weights, rate / learning_rate)] if rate else []
    features = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    model.fit(features, np.ones((32, 3), np.float32), batch_size=8, epochs=2, verbose=0, callbacks=callbacks)

    pairs = zip(model.get_weights(), start, strict=True)
    moved = any(not np.allclose(after, before, atol=1e-6) for after, before in pairs)
    assert moved == expect_moved


def test_the_malignant_group_loss_adds_the_groups_binary_cross_entropy():
    """Seven-way cross-entropy plus weight x -[s log P(mal) + (1 - s) log P(benign)], s the label's malignant share."""
    from training.classes import CLASSES, MALIGNANT_CLASSES
    from training.experiments.group_loss import WithMalignantGroup
    from training.experiments.recipe import ExperimentRecipe

    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (5, len(CLASSES))).astype(np.float32)
    logits[4] = [40.0 if code == "nv" else -40.0 for code in CLASSES]  # a confident benign softmax
    labels = np.eye(len(CLASSES), dtype=np.float32)[[CLASSES.index(c) for c in ("mel", "nv", "bcc", "df", "mel")]]
    labels[3] = 0.7 * labels[3] + 0.3 * np.eye(len(CLASSES))[CLASSES.index("akiec")]  # a mixup label

    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    malignant = np.array([code in MALIGNANT_CLASSES for code in CLASSES])
    seven_way = -(labels * np.log(np.clip(probabilities, 1e-30, None))).sum(axis=1)
    share, p_malignant = labels[:, malignant].sum(axis=1), probabilities[:, malignant].sum(axis=1)
    log_benign = np.log(np.clip(1 - p_malignant, 1e-30, None))
    group = -(share * np.log(np.clip(p_malignant, 1e-30, None)) + (1 - share) * log_benign)
    # mel labelled; P(mal) = 3 e^-40 / e^40 underflows float32, the log-sum-exp keeps it: 80 - ln 3.
    group[4] = 80.0 - np.log(3.0)

    loss = WithMalignantGroup(0.5)
    per_picture = np.asarray(loss.call(labels, logits))
    np.testing.assert_allclose(per_picture[:4], (seven_way + 0.5 * group)[:4], rtol=1e-4)
    assert np.isfinite(per_picture[4]) and per_picture[4] == pytest.approx(80.0 + 0.5 * group[4], rel=1e-4)
    np.testing.assert_allclose(np.asarray(WithMalignantGroup(0.0).call(labels, logits))[:4], seven_way[:4], rtol=1e-4)

    assert isinstance(ExperimentRecipe(malignant_group_loss=0.5).fine_tune_loss(), WithMalignantGroup)
    assert not isinstance(ExperimentRecipe().fine_tune_loss(), WithMalignantGroup)
