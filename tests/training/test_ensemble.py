"""training.ensemble: versions sharing a stem merged into one served network."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiny_model import TINY_INPUT_SIZE, TINY_LAYER_CAM_LAYER, tiny_mobilenet
from training.ensemble import check_merged, merge, scaled_logits
from training.layercam import layer_cam_model, map_disagreement, tape_layer_cam

SHARED_UNTIL = "block_13_expand"  # the tiny network's stem: Conv1, block_11 and block_12


def member(seed: int, temperature: float, stem_from=None):
    """A tiny MobileNet-like version; with ``stem_from``, that version's weights before SHARED_UNTIL."""
    model = tiny_mobilenet(seed=seed)
    model.get_layer("temperature_scaling").scale = 1.0 / temperature
    if stem_from is not None:
        (base,), (source,) = ([layer for layer in m.layers if hasattr(layer, "layers")] for m in (model, stem_from))
        names = [layer.name for layer in base.layers]
        for ours, theirs in zip(base.layers[: names.index(SHARED_UNTIL)], source.layers, strict=False):
            ours.set_weights(theirs.get_weights())
    return model


@pytest.fixture(scope="module")
def members():
    first = member(1, temperature=0.8)
    return [first, member(2, temperature=1.3, stem_from=first), member(3, temperature=1.0, stem_from=first)]


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(4).uniform(0, 255, (8, *TINY_INPUT_SIZE, 3)).astype(np.float32)


def test_the_merged_logits_are_the_mean_of_the_members_scaled_logits(members, pixels):
    merged = merge(members, SHARED_UNTIL)

    expected = np.mean([scaled_logits(model, pixels) for model in members], axis=0)
    np.testing.assert_allclose(np.asarray(merged(pixels)), expected, atol=1e-4)
    assert check_merged(merged, members) < 1e-3
    # Members that disagree make the mean differ from each of them: the test would catch a merge
    # that kept one member only.
    assert min(np.abs(expected - scaled_logits(model, pixels)).max() for model in members) > 0.1


def test_the_stem_runs_once_and_ends_in_the_served_head(members):
    merged = merge(members, SHARED_UNTIL)
    names = [layer.name for layer in merged.layers]

    assert names.count("Conv1") == 1 and not [name for name in names if name.endswith("_Conv1")]
    assert {"block_14_expand", "member2_block_14_expand", "member3_block_14_expand"} <= set(names)
    assert names[-3:] == ["pool", "head_dropout", "logits"]
    assert merged.get_layer("pool").output.shape[-1] == 3 * members[0].get_layer("pool").output.shape[-1]


def test_members_fine_tuned_from_other_weights_share_no_stem(members):
    stranger = member(9, temperature=1.0)  # its own stem

    with pytest.raises(ValueError, match="layer 'Conv1' differs"):
        merge([members[0], stranger], SHARED_UNTIL)
    with pytest.raises(ValueError, match="no layer 'block_99_expand'"):
        merge(members[:2], "block_99_expand")
    with pytest.raises(ValueError, match="at least two"):
        merge(members[:1], SHARED_UNTIL)


@pytest.mark.parametrize(
    "layer", [TINY_LAYER_CAM_LAYER, "block_14_expand_relu", "member2_block_14_expand_relu"],
    ids=["in-the-shared-stem", "in-the-first-members-tail", "in-the-second-members-tail"],
)  # fmt: skip
def test_layer_cam_on_the_merged_network_is_gradient_tapes(members, pixels, layer):
    import keras

    merged = merge(members, SHARED_UNTIL)
    scaled = keras.layers.Rescaling(1.0, name="temperature_scaling")(merged.output)
    served = keras.Model(merged.inputs, keras.layers.Softmax(name="probabilities")(scaled))

    probabilities, _, maps = (np.asarray(out) for out in layer_cam_model(served, layer)(pixels))

    assert map_disagreement(maps, tape_layer_cam(served, layer)(pixels)) is None
    assert maps.max() > 0
    np.testing.assert_allclose(probabilities, np.asarray(served(pixels)), atol=1e-6)


# --- Two real (tiny) trained MobileNetV2 runs, merged, calibrated, exported and served ---------

INPUT_SIZE = (32, 32)


@pytest.fixture(scope="module")
def ensemble_version(tiny_dataset, tiny_split, tmp_path_factory):
    """Two runs fine-tuned from block_16_expand of the same initial weights (seed), exported as
    candidates, merged by training.ensemble, then evaluated and exported as a version."""
    import json

    from training.ensemble import build
    from training.evaluate import VALIDATION_FILENAME, evaluate_runs, write_report
    from training.export import export
    from training.train import Recipe, train

    data_dir, split_file = str(tiny_dataset["data_dir"]), str(tiny_split["path"])
    root = tmp_path_factory.mktemp("ensemble")
    common = dict(arch="mobilenetv2", input_size=INPUT_SIZE, batch_size=8, head_epochs=1, fine_tune_epochs=1)
    members = []
    for name, mixup in (("a", 0.0), ("b", 0.2)):  # another recipe, the same stem
        train(Recipe(fine_tune_from="block_16_expand", mixup=mixup, seed=5, **common), data_dir, split_file,
              None, None, root / name, lambda message: None)  # fmt: skip
        report = evaluate_runs(root / name, None, data_dir, split_file, None, validation_only=True)
        (root / name / VALIDATION_FILENAME).write_text(json.dumps(report), encoding="utf-8")
        members.append(export(root / name, root / name, f"member-{name}", root / "members", split_file, True))

    build(members, root / "merged")
    report = evaluate_runs(root / "merged", None, data_dir, split_file, None)
    write_report(report, root / "merged", None, root / "merged" / "report")
    version = export(root / "merged", root / "merged" / "report", "tiny-ensemble-v1", root / "models", split_file)
    return {"version_dir": version, "members": members, "report": report}


def test_an_ensemble_is_evaluated_and_exported_like_a_trained_run(ensemble_version):
    from training.card import read_card

    card = read_card(ensemble_version["version_dir"])
    ensemble = card.raw["recipe"]["ensemble"]

    assert [member["version"] for member in ensemble["members"]] == ["member-a", "member-b"]
    assert ensemble["shared_stem_until"] == "block_16_expand"
    assert card.raw["architecture"].startswith("An ensemble of 2 MobileNetV2 networks (member-a, member-b)")
    assert "member-b: " in card.raw["recipe"]["augmentation"]
    assert card.raw["temperature"] == ensemble_version["report"]["model"]["temperature"]
    assert card.raw["metrics"]["test"]["balanced_accuracy"] is not None


@pytest.mark.parametrize("backend", ["keras", "litert"])
def test_a_worker_serves_an_ensemble_with_its_heatmap_on_either_backend(ensemble_version, backend, tiny_dataset):
    import keras

    from training.calibrate import softmax
    from training.data import image_path
    from training.export_litert import export_version
    from training.preprocessing import load_model_input
    from worker.model_cache import load_model

    version_dir = ensemble_version["version_dir"]
    if backend == "litert" and not (version_dir / "model.tflite").exists():
        export_version(version_dir)
    ids = tiny_dataset["metadata"]["image_id"][:4]
    pixels = np.stack([load_model_input(image_path(tiny_dataset["data_dir"], i), INPUT_SIZE) for i in ids])

    outputs = load_model("tiny-ensemble-v1", version_dir, backend=backend).analyse(pixels)

    members = [keras.saving.load_model(path / "model.keras") for path in ensemble_version["members"]]
    mean = np.mean([scaled_logits(member, pixels) for member in members], axis=0)
    temperature = ensemble_version["report"]["model"]["temperature"]
    np.testing.assert_allclose(outputs.probabilities, softmax(mean, temperature), atol=1e-4)
    assert outputs.features.shape == (4, 2 * 1280)  # both members' pooled features
    assert outputs.heatmaps.shape[0] == 4 and np.isfinite(outputs.heatmaps).all()


def test_retraining_splits_an_ensemble_at_its_pooled_features_like_one_network(ensemble_version):
    import keras

    from training.retrain import split_calibrated_model

    served = keras.saving.load_model(ensemble_version["version_dir"] / "model.keras")
    logits_model, features_model, head = split_calibrated_model(served)
    pixels = np.random.default_rng(5).uniform(0, 255, (3, *INPUT_SIZE, 3)).astype(np.float32)

    assert head.inputs[0].shape[-1] == 2 * 1280  # a new head is trained on both members' features
    np.testing.assert_allclose(
        np.asarray(head(features_model(pixels))), np.asarray(logits_model(pixels)), rtol=1e-5, atol=1e-5
    )
