"""The whole pipeline on the tiny dataset: train, evaluate, export, reload, predict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.card import parse_card, read_card
from training.classes import CLASSES
from training.data import image_path, one_hot
from training.preprocessing import load_model_input

INPUT_SIZE = (32, 32)  # the smallest MobileNetV2 accepts: keeps the run to seconds


@pytest.fixture(scope="module")
def shipped(tiny_dataset, tiny_split, tmp_path_factory):
    """One short MobileNetV2 run and one custom-CNN run, evaluated and exported."""
    from training.evaluate import evaluate_runs, write_report
    from training.export import export
    from training.train import Recipe, train

    data_dir = tiny_dataset["data_dir"]
    root = tmp_path_factory.mktemp("runs")
    messages: list[str] = []
    reports = {"mnv2": [], "cnn": []}
    common = dict(input_size=INPUT_SIZE, batch_size=8, head_epochs=2, fine_tune_epochs=1, cnn_epochs=1)
    recipe = Recipe(arch="mobilenetv2", fine_tune_from="block_16_expand", **common)
    split_file = str(tiny_split["path"])
    train(recipe, str(data_dir), split_file, None, None, root / "mnv2", messages.append, reports["mnv2"].append)
    cnn = Recipe(arch="cnn", **common)
    train(cnn, str(data_dir), split_file, None, None, root / "cnn", messages.append, reports["cnn"].append)

    report = evaluate_runs(root / "mnv2", root / "cnn", str(data_dir), split_file, None)
    write_report(report, root / "mnv2", root / "cnn", root / "report")
    version_dir = export(root / "mnv2", root / "report", "tiny-test-v1", root / "models", split_file)
    return {
        "version_dir": version_dir,
        "report": report,
        "messages": messages,
        "reports": reports,
        "run_dir": root / "mnv2",
    }


@pytest.fixture(scope="module")
def exported_model(shipped):
    import keras

    return keras.saving.load_model(shipped["version_dir"] / "model.keras")


@pytest.fixture(scope="module")
def some_inputs(tiny_dataset):
    ids = tiny_dataset["metadata"]["image_id"][:5]
    return np.stack([load_model_input(image_path(tiny_dataset["data_dir"], i), INPUT_SIZE) for i in ids])


def test_training_reports_every_epoch_and_saves_a_run_record(shipped):
    from training.train import EpochReport

    run = json.loads((shipped["run_dir"] / "run.json").read_text())
    assert [entry["phase"] for entry in run["history"]] == ["head", "head", "fine_tune"]
    assert run["imbalance"] in ("none", "sqrt", "balanced")
    assert set(run["imbalance_comparison_val_balanced_accuracy"]) == {"none", "sqrt", "balanced"}
    reported = shipped["reports"]["mnv2"]
    assert all(isinstance(report, EpochReport) for report in reported)
    assert [(report.phase, report.epoch) for report in reported] == [("head", 1), ("head", 2), ("fine_tune", 1)]
    assert [report.val_balanced_accuracy for report in reported] == [e["val_balanced_accuracy"] for e in run["history"]]
    assert [(report.phase, report.epoch) for report in shipped["reports"]["cnn"]] == [("cnn", 1)]
    assert not any(message.startswith("{") for message in shipped["messages"])  # progress is not text to parse


def test_the_exported_model_reloads_with_plain_load_model(exported_model):
    layer_types = {type(layer).__name__ for layer in exported_model.layers}
    assert "Softmax" in layer_types
    assert "Rescaling" in layer_types


def test_predictions_are_n_by_7_probabilities_that_sum_to_one(exported_model, some_inputs):
    probabilities = np.asarray(exported_model(some_inputs))
    assert probabilities.shape == (len(some_inputs), len(CLASSES))
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_augmentation_is_off_at_inference(exported_model, some_inputs):
    first = np.asarray(exported_model(some_inputs, training=False))
    second = np.asarray(exported_model.predict(some_inputs, verbose=0))
    np.testing.assert_allclose(first, second, atol=1e-6)
    assert not any(type(layer).__name__.startswith("Random") for layer in exported_model.layers)


def test_augmentation_changes_pictures_in_training_only():
    from training.augment import make_augmentation

    augmentation = make_augmentation(seed=3)
    pictures = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(augmentation(pictures, training=False)), pictures)
    assert not np.allclose(np.asarray(augmentation(pictures, training=True)), pictures)


def test_colour_augmentation_changes_colours_in_training_only_and_stays_in_range():
    from training.augment import make_augmentation

    # Flips, rotations, shifts and zooms (reflect fill) leave a one-colour picture as it
    # is; only the colour layers can change it.
    flat = np.full((8, 32, 32, 3), 120.0, dtype=np.float32)
    np.testing.assert_allclose(np.asarray(make_augmentation(seed=3)(flat, training=True)), flat, atol=1e-3)

    augmentation = make_augmentation(seed=3, color=True)
    np.testing.assert_array_equal(np.asarray(augmentation(flat, training=False)), flat)
    recoloured = np.asarray(augmentation(flat, training=True))
    assert np.abs(recoloured - flat).max() > 1.0
    pictures = np.random.default_rng(1).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    augmented = np.asarray(augmentation(pictures, training=True))
    assert augmented.min() >= 0.0 and augmented.max() <= 255.0


def test_the_card_passes_parse_card_and_lists_the_output_order(shipped):
    card = read_card(shipped["version_dir"])
    raw = json.loads((shipped["version_dir"] / "card.json").read_text())
    assert parse_card(raw) == card
    assert card.classes == CLASSES
    assert card.input_size == INPUT_SIZE
    assert 0.0 <= card.malignant_threshold <= 1.0
    assert raw["calibration"] == "temperature scaling built into the model"
    assert raw["temperature"] > 0
    for key in ("created", "architecture", "metrics", "trained_on", "recipe", "input"):
        assert key in raw
    assert raw["trained_on"]["licence"].startswith("CC BY-NC 4.0")
    run = json.loads((shipped["run_dir"] / "run.json").read_text())
    assert raw["recipe"]["loss_weights"] == run["imbalance"]  # the weighting, structurally, for retraining


def test_output_columns_follow_the_card_and_the_training_labels(shipped, exported_model, some_inputs):
    """Column i of the output is the class the training labels encoded as i, which is card.classes[i]."""
    import keras

    card = read_card(shipped["version_dir"])
    for code in CLASSES:
        assert one_hot([code]).argmax() == card.classes.index(code)
    logits_model = keras.saving.load_model(shipped["run_dir"] / "model_logits.keras")
    temperature = card.raw["temperature"]
    logits = np.asarray(logits_model(some_inputs))
    expected = np.exp(logits / temperature) / np.exp(logits / temperature).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(exported_model(some_inputs)), expected, atol=1e-5)


def test_the_report_scores_both_models_and_the_majority_baseline(shipped):
    report = shipped["report"]
    for entry in (report["model"], report["custom_cnn"], report["majority_baseline"]):
        assert 0.0 <= entry["test"]["balanced_accuracy"] <= 1.0
    files = {path.name for path in (shipped["version_dir"] / "report").iterdir()}
    assert {"metrics.json", "confusion_matrix.json", "confusion_matrix.png", "training_curves.png"} <= files
    assert {"custom_cnn_metrics.json", "majority_baseline.json"} <= files


def test_validation_only_scoring_never_reads_a_test_image(shipped, tiny_dataset, tiny_split, tmp_path, capsys):
    """The report runs are chosen on: the same validation numbers, and no test picture opened."""
    import shutil

    from training.evaluate import main

    data_dir = tmp_path / "ham_without_test"
    shutil.copytree(tiny_dataset["data_dir"], data_dir)
    split = tiny_split["table"]
    for image_id in split.loc[split["split"] == "test", "image_id"]:
        image_path(data_dir, image_id).unlink()
    run_dir = tmp_path / "run"
    shutil.copytree(shipped["run_dir"], run_dir)

    main(
        [
            "--run",
            str(run_dir),
            "--data-dir",
            str(data_dir),
            "--split-file",
            str(tiny_split["path"]),
            "--cache-dir",
            "",
            "--validation-only",
        ]
    )

    scored = json.loads((run_dir / "validation.json").read_text())
    assert "test" not in scored["model"] and "test" not in scored["majority_baseline"]
    full = shipped["report"]["model"]
    assert scored["model"]["val"]["balanced_accuracy"] == pytest.approx(full["val"]["balanced_accuracy"])
    assert scored["model"]["temperature"] == pytest.approx(full["temperature"])
    assert not (run_dir / "report").exists()
    assert "test split was not loaded" in capsys.readouterr().out

    # A candidate version from that report: measurable (robustness, heatmaps) before any test figure exists.
    from training.card import read_card
    from training.export import export

    candidate = export(
        run_dir, run_dir / "report", "candidate-v9", tmp_path / "candidates", str(tiny_split["path"]), True
    )
    card = read_card(candidate)
    assert card.raw["metrics"]["test"] is None and card.raw["metrics"]["val"]["balanced_accuracy"] > 0
    assert card.malignant_threshold == pytest.approx(scored["model"]["malignant_threshold"])


def test_fine_tuning_keeps_the_base_in_inference_mode():
    """A trainable batch-norm would normalise by batch statistics inside fit() and erase the features."""
    from training.models import build_mobilenet_v2, feature_extractor, unfreeze_top

    model, base, _ = build_mobilenet_v2(INPUT_SIZE, weights=None)
    assert unfreeze_top(base, "block_15_expand") > 0
    extractor = feature_extractor(model)
    pictures = np.random.default_rng(0).uniform(0, 255, (4, *INPUT_SIZE, 3)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(extractor(pictures, training=True)), np.asarray(extractor(pictures, training=False)), atol=1e-5
    )


def test_a_run_continues_from_a_saved_run_and_keeps_its_record(shipped, tiny_dataset, tiny_split, tmp_path):
    from training.train import Recipe, train

    first = json.loads((shipped["run_dir"] / "run.json").read_text())
    recipe = Recipe(
        input_size=INPUT_SIZE,
        batch_size=8,
        fine_tune_epochs=1,
        fine_tune_from="block_16_expand",
        init_from=str(shipped["run_dir"]),
    )
    _, run = train(recipe, str(tiny_dataset["data_dir"]), str(tiny_split["path"]), None, None, tmp_path, print)
    assert [e["phase"] for e in run["history"]][-1] == "fine_tune_continued"
    assert len(run["history"]) == len(first["history"]) + 1
    assert run["train_seconds"] > first["train_seconds"]
    assert run["val_balanced_accuracy"] >= first["val_balanced_accuracy"] - 1e-9  # never ends worse


def _linear_model(weights):
    """A 7-in, 7-out linear model holding ``weights``, as fine-tuning leaves its best epoch's."""
    import keras

    model = keras.Sequential([keras.Input((7,)), keras.layers.Dense(7)])
    model.set_weights(weights)
    return model


def _weights(kernel):
    return [np.asarray(kernel, dtype=np.float32), np.zeros(7, dtype=np.float32)]


# One-hot inputs, input i is class i: each epoch below gets one class wrong, their average none.
ONE_WRONG = np.eye(7)
ONE_WRONG[0, 0], ONE_WRONG[0, 1] = 0.0, 0.8  # class 0 read as class 1
OTHER_WRONG = np.eye(7)
OTHER_WRONG[1, 1], OTHER_WRONG[1, 2] = 0.0, 0.8  # class 1 read as class 2


def test_the_average_of_the_last_epochs_is_kept_when_validation_prefers_it():
    from training.train import Phase, try_weight_average

    first, second = _weights(ONE_WRONG), _weights(OTHER_WRONG)
    model, phase = _linear_model(first), Phase(history=[], best_epoch=5, best_score=6 / 7)

    result = try_weight_average(model, [(5, first), (6, second)], phase, np.eye(7, dtype=np.float32), np.arange(7),
                                "fine_tune", print)  # fmt: skip

    assert result == {"epochs": [5, 6], "val_balanced_accuracy": 1.0, "kept": True}
    assert phase.best_score == 1.0
    np.testing.assert_allclose(model.get_weights()[0], (ONE_WRONG + OTHER_WRONG) / 2)


def test_the_best_single_epoch_stays_when_the_average_is_no_better():
    from training.train import Phase, try_weight_average

    model, phase = _linear_model(_weights(np.eye(7))), Phase(history=[], best_epoch=4, best_score=1.0)
    recent = [(5, _weights(ONE_WRONG)), (6, _weights(OTHER_WRONG))]

    result = try_weight_average(model, recent, phase, np.eye(7, dtype=np.float32), np.arange(7), "fine_tune", print)

    assert result["kept"] is False and phase.best_score == 1.0
    np.testing.assert_allclose(model.get_weights()[0], np.eye(7))


def test_logit_offsets_are_tau_times_the_log_prior():
    from training.train import logit_offsets

    labels = np.repeat(np.arange(7), [50, 20, 10, 10, 5, 4, 1])
    offsets = logit_offsets(labels, 0.5)
    np.testing.assert_allclose(offsets, 0.5 * np.log(np.array([50, 20, 10, 10, 5, 4, 1]) / 100), rtol=1e-6)


def test_the_logit_adjusted_view_shifts_the_logits_and_trains_the_model_under_it():
    import keras

    from training.train import with_logit_adjustment

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(7, name="logits")])
    offsets = np.log(np.linspace(0.05, 0.25, 7)).astype(np.float32)
    view = with_logit_adjustment(model, offsets)
    inputs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)

    np.testing.assert_allclose(np.asarray(view(inputs)), np.asarray(model(inputs)) + offsets, rtol=1e-5, atol=1e-5)
    before = [w.copy() for w in model.get_weights()]
    view.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    view.fit(inputs, np.eye(7, dtype=np.float32)[np.arange(16) % 7], epochs=1, verbose=0)

    assert not np.allclose(model.get_weights()[0], before[0])  # the model's own weights trained
    np.testing.assert_allclose(view.get_layer("logit_adjustment").get_weights()[1], offsets)  # the shift did not
    assert "logit_adjustment" not in [layer.name for layer in model.layers]


def test_a_logit_adjusted_run_trains_unweighted_and_saves_the_plain_logits(tiny_dataset, tiny_split, tmp_path):
    import keras

    from training.train import LOGITS_MODEL_FILENAME, Recipe, train

    recipe = Recipe(
        input_size=INPUT_SIZE,
        batch_size=8,
        head_epochs=1,
        fine_tune_epochs=1,
        fine_tune_from="block_16_expand",
        logit_adjustment=1.0,
    )
    _, run = train(recipe, str(tiny_dataset["data_dir"]), str(tiny_split["path"]), None, None, tmp_path, print)

    assert run["imbalance"] == "none"
    assert "imbalance_comparison_val_balanced_accuracy" not in run  # nothing to choose
    assert set(run["logit_offsets"]) == set(CLASSES)
    saved = keras.saving.load_model(tmp_path / LOGITS_MODEL_FILENAME)
    assert "logit_adjustment" not in [layer.name for layer in saved.layers]
    assert [entry["phase"] for entry in run["history"]] == ["head", "fine_tune"]


@pytest.mark.parametrize(
    ("weights", "sampling", "tau", "expected"),
    [
        ("balanced", "shuffle", 0.0, "class-weighted loss ('balanced')"),
        (
            "none",
            "balanced",
            0.0,
            "unweighted loss, class-resampled batches ('balanced': each class drawn equally often)",
        ),
        ("none", "shuffle", 1.0, "logit-adjusted loss (tau 1 x log class prior, in training only)"),
    ],
)
def test_the_card_says_how_the_imbalance_was_handled(weights, sampling, tau, expected):
    from training.export import describe_imbalance

    assert describe_imbalance(weights, sampling, tau) == expected


def test_mixup_blends_pictures_labels_and_weights_alike():
    from training.train import Recipe, make_train_dataset

    labels = np.repeat(np.arange(7), 20)
    # Each picture is one grey value, 10 x its class, so a blend's value tells its mix.
    images = np.repeat((labels * 10).astype(np.uint8), 4 * 4 * 3).reshape(-1, 4, 4, 3)
    weights = np.arange(1.0, 8.0)

    def unchanged(x, training):
        return x

    pictures, _ = Recipe(seed=3).training_pictures(images, labels, weights)
    dataset = make_train_dataset(pictures, 35, unchanged, mixup=0.4)
    blended = 0
    for x, y, w in dataset:
        x, y, w = np.asarray(x), np.asarray(y), np.asarray(w)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
        assert (y.max(axis=1) >= 0.5 - 1e-6).all()  # one picture stays dominant
        np.testing.assert_allclose(x[:, 0, 0, 0], 10 * (y @ np.arange(7)), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(w, y @ weights, rtol=1e-5)
        assert np.ptp(x, axis=(1, 2, 3)).max() < 1e-3  # blended whole pictures, not patches
        blended += int((y.max(axis=1) < 0.99).sum())
    assert blended > 50  # most of the 140 pictures were mixed with another class


def test_a_reframed_squash_run_trains_on_the_whole_picture_and_its_card_says_so(tiny_dataset, tiny_split, tmp_path):
    from training.export import describe_input
    from training.train import Recipe, train

    recipe = Recipe(input_size=INPUT_SIZE, batch_size=8, head_epochs=1, fine_tune_epochs=1,
                    fine_tune_from="block_16_expand", geometry="squash", framing=True)  # fmt: skip
    model, run = train(recipe, str(tiny_dataset["data_dir"]), str(tiny_split["path"]), None, None, tmp_path, print)

    assert (run["recipe"]["geometry"], run["recipe"]["framing"]) == ("squash", True)
    assert [entry["phase"] for entry in run["history"]] == ["head", "fine_tune"]
    assert tuple(model.input_shape[1:3]) == tuple(INPUT_SIZE)
    assert describe_input("squash")["geometry"] == "squash"


def test_the_reframed_stream_gives_model_inputs_from_training_scale_pictures():
    from training.preprocessing import SOURCE_SIZE
    from training.train import Recipe

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, *SOURCE_SIZE, 3), dtype=np.uint8)
    labels, weights = np.arange(6) % len(CLASSES), np.ones(len(CLASSES))
    pictures, _ = Recipe(input_size=(150, 150), geometry="squash", framing=True).training_pictures(
        images, labels, weights
    )

    shapes = [tuple(x.shape) for x, _, _ in pictures.take(6)]
    assert shapes == [(150, 150, 3)] * 6
