"""The heatmap evaluation: the maps (as served, and finer ones), its measures on hand-made maps, the command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.training.lesions import EARLY_LAYER, LATE_LAYER, NESTED_INPUT_SIZE
from training.explanations import (
    activations_and_logits,
    cam,
    centre_in_lesion,
    faithfulness,
    heat_in_lesion,
    hottest,
    layer_cams,
    main,
    parse_method,
    pointing_hit,
    probability_drops,
    served_grad_cam,
    served_layer_cam,
    upsample,
)
from training.layercam import map_disagreement


@pytest.fixture(scope="module")
def nested_model(nested_version):
    import keras

    return keras.saving.load_model(nested_version / "model.keras", compile=False)


@pytest.fixture(scope="module")
def some_pixels():
    from tests.training.lesions import lesion_picture
    from training.preprocessing import to_model_input

    rng = np.random.default_rng(4)
    centres = [(60, 50), (140, 100), (100, 75), (80, 90), (120, 60)]
    return np.stack([to_model_input(lesion_picture(rng, centre)[0], NESTED_INPUT_SIZE) for centre in centres])


# --- the maps --------------------------------------------------------------------------------


def test_the_shipped_map_is_the_workers_grad_cam(nested_version, nested_model, some_pixels):
    from worker.model_cache import load_model

    served = load_model("tiny-nested", nested_version).analyse(some_pixels)

    probabilities, heatmaps = served_grad_cam(nested_model)(some_pixels)

    np.testing.assert_allclose(probabilities, served.probabilities, atol=1e-6)
    np.testing.assert_allclose(heatmaps, served.heatmaps, atol=1e-6)


def test_the_shipped_map_matches_grad_cam_computed_by_hand(nested_model, some_pixels):
    """With pooling -> dense, Grad-CAM is relu(sum_k W[k, top] * A_k) scaled to peak 1."""
    import keras

    probabilities, heatmaps = served_grad_cam(nested_model)(some_pixels)

    maps = keras.Model(nested_model.inputs[0], nested_model.get_layer("pool").input)(some_pixels).numpy()
    weights = nested_model.get_layer("logits").get_weights()[0]
    for i, top in enumerate(probabilities.argmax(axis=1)):
        expected = np.maximum(maps[i] @ weights[:, top], 0)
        expected = expected / expected.max() if expected.max() > 0 else expected
        np.testing.assert_allclose(heatmaps[i], expected, atol=1e-5)


def test_grad_cam_on_the_last_layer_of_a_nested_base_is_the_shipped_map(nested_model, some_pixels):
    _, shipped = served_grad_cam(nested_model)(some_pixels)

    maps = layer_cams(nested_model, LATE_LAYER, ("gradcam",))(some_pixels)["gradcam"]

    np.testing.assert_allclose(maps, shipped, atol=1e-5)


def test_an_earlier_layer_gives_a_finer_map_from_the_versions_own_weights(nested_model, some_pixels):
    both = activations_and_logits(nested_model, EARLY_LAYER)
    activations, logits = (np.asarray(output) for output in both(some_pixels))
    expected_logits = np.log(np.asarray(nested_model(some_pixels)))

    assert activations.shape[1:3] == (NESTED_INPUT_SIZE[0] // 2, NESTED_INPUT_SIZE[1] // 2)
    # The same network: softmax of its logits is the model's output (temperature 1 here).
    np.testing.assert_allclose(
        logits - logits.max(axis=1, keepdims=True),
        expected_logits - expected_logits.max(axis=1, keepdims=True),
        atol=1e-4,
    )
    maps = layer_cams(nested_model, EARLY_LAYER, ("gradcam", "gradcam++", "layercam"))(some_pixels)
    for kind, kind_maps in maps.items():
        assert kind_maps.shape == (len(some_pixels), 24, 24), kind
        assert kind_maps.min() >= 0 and np.isclose(kind_maps.max(axis=(1, 2)), 1).all(), kind


def test_the_served_layer_cam_is_gradient_tapes(nested_model, some_pixels):
    """The served map (training.layercam's forward-only graph) through a strided 3x3 convolution."""
    served = served_layer_cam(nested_model, EARLY_LAYER)(some_pixels)

    tape = layer_cams(nested_model, EARLY_LAYER, ("layercam",))(some_pixels)["layercam"]

    assert map_disagreement(served, tape) is None


def test_an_unknown_layer_or_method_is_refused_by_name(nested_model):
    with pytest.raises(ValueError, match="no layer 'block_99'"):
        activations_and_logits(nested_model, "block_99")
    with pytest.raises(ValueError, match="unknown method 'scorecam@x'"):
        parse_method("scorecam@x")
    assert parse_method("gradcam") == ("gradcam", None)
    assert parse_method("layercam@block_13_expand_relu") == ("layercam", "block_13_expand_relu")


def test_the_three_kinds_of_map_weight_activations_as_their_papers_say():
    # One picture, a 1x2 grid, two channels. Channel 0 is on at both positions, channel 1 only on the right.
    activations = np.array([[[[1.0, 0.0], [1.0, 2.0]]]])
    gradients = np.array([[[[0.5, -1.0], [-0.1, 1.0]]]])

    # Grad-CAM: weights are mean gradients (0.2, 0.0): left 0.2, right 0.2 -> both 1 after scaling.
    np.testing.assert_allclose(cam("gradcam", activations, gradients), [[[1.0, 1.0]]])
    # Layer-CAM: each position by its own positive gradient: left 0.5, right 2.0.
    np.testing.assert_allclose(cam("layercam", activations, gradients), [[[0.25, 1.0]]])
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3); weights = sum(alpha * relu(g)).
    # Channel 0 (sum A = 2): only g = 0.5 counts: 0.25 / (0.5 + 0.25) * 0.5 = 1/6.
    # Channel 1 (sum A = 2): only g = 1 counts: 1 / (2 + 2) * 1 = 1/4.
    left, right = 1 * (1 / 6), 1 * (1 / 6) + 2 * (1 / 4)
    np.testing.assert_allclose(cam("gradcam++", activations, gradients), [[[left / right, 1.0]]])
    # Nothing positive: an empty map, not a division by zero.
    np.testing.assert_array_equal(cam("gradcam", activations, np.zeros_like(gradients)), np.zeros((1, 1, 2)))


# --- the measures, on hand-made maps and masks ------------------------------------------------


def test_upsampling_spreads_the_grid_over_the_box_cell_centres_on_pixel_centres():
    grid = np.array([[0.0, 1.0], [0.0, 0.0]])

    heat = upsample(grid, (20, 10))

    assert heat.shape == (10, 20)
    assert np.unravel_index(heat.argmax(), heat.shape)[1] >= 10  # the hot cell is the top right one
    assert heat[0, 19] == pytest.approx(1.0) and heat[9, 0] == pytest.approx(0.0)


def test_the_pointing_game_hits_when_the_hottest_point_is_in_the_lesion():
    lesion = np.zeros((10, 10), dtype=bool)
    lesion[2:5, 2:5] = True
    inside, outside = np.zeros((10, 10)), np.zeros((10, 10))
    inside[3, 3], outside[8, 8] = 1.0, 1.0

    assert pointing_hit(inside, lesion)
    assert not pointing_hit(outside, lesion)
    assert not pointing_hit(np.zeros((10, 10)), lesion)  # an empty map points nowhere


def test_the_heat_in_the_lesion_is_its_share_of_the_maps_total():
    lesion = np.zeros((10, 10), dtype=bool)
    lesion[:, :3] = True  # 30 % of the area

    assert heat_in_lesion(np.ones((10, 10)), lesion) == pytest.approx(0.3)  # a flat map: the area share
    heat = np.zeros((10, 10))
    heat[0, 0], heat[9, 9] = 3.0, 1.0
    assert heat_in_lesion(heat, lesion) == pytest.approx(0.75)
    assert heat_in_lesion(np.zeros((10, 10)), lesion) is None


def test_the_centre_baseline_asks_whether_the_centre_is_in_the_lesion():
    lesion = np.zeros((150, 150), dtype=bool)
    assert not centre_in_lesion(lesion)
    lesion[70:80, 70:80] = True
    assert centre_in_lesion(lesion)


def test_the_hottest_share_is_exactly_that_many_pixels_and_the_hottest_ones():
    heat = np.arange(100, dtype=float).reshape(10, 10)

    chosen = hottest(heat, 0.1, np.random.default_rng(0))

    assert chosen.sum() == 10
    assert chosen[9].all() and not chosen[:9].any()  # the last row holds the ten largest values


def test_faithfulness_measures_the_drop_of_the_top_class_when_its_region_is_blurred():
    """A hand-made "model": P(class 0) is the mean brightness of the top-left 10x10 block, over 255."""

    def probabilities_of(pixels):
        p0 = pixels[:, :10, :10].mean(axis=(1, 2, 3)) / 255
        return np.stack([p0, 1 - p0], axis=1)

    pixels = np.full((2, 20, 20, 3), 200.0)
    replacement = np.zeros_like(pixels)  # "blurred": black
    heat = np.zeros((2, 20, 20))
    heat[:, :10, :4] = 1.0  # 40 pixels, 10 % of 400, all in the block the model reads
    random_heat = np.zeros((2, 20, 20))
    random_heat[0, 16:, :] = 1.0  # 40 pixels outside the block
    random_heat[1, :4, :10] = 1.0  # 40 pixels inside it: a random region that happens to matter as much
    top = np.zeros(2, dtype=int)
    before = probabilities_of(pixels)[:, 0]
    rng = np.random.default_rng(0)
    regions = np.stack([hottest(h, 0.1, rng) for h in heat])
    random_regions = np.stack([hottest(h, 0.1, rng) for h in random_heat])

    map_drops = probability_drops(pixels, replacement, regions, top, before, probabilities_of)
    random_drops = probability_drops(pixels, replacement, random_regions, top, before, probabilities_of)

    np.testing.assert_allclose(map_drops, [40 / 100 * 200 / 255] * 2, atol=1e-6)
    np.testing.assert_allclose(random_drops, [0.0, 40 / 100 * 200 / 255], atol=1e-6)
    summary = faithfulness(map_drops, random_drops)
    assert summary["map_drop"] == pytest.approx(40 / 100 * 200 / 255)
    assert summary["random_drop"] == pytest.approx(20 / 100 * 200 / 255)
    assert summary["map_beats_random"] == 0.5  # a tie is not a win


# --- the command -----------------------------------------------------------------------------


def test_the_command_scores_every_method_against_the_masks(nested_version, lesion_dataset, tmp_path):
    out = tmp_path / "explanations.json"
    methods = ["gradcam", f"gradcam@{EARLY_LAYER}", f"gradcam++@{EARLY_LAYER}", f"layercam@{EARLY_LAYER}"]

    main(
        [
            str(nested_version),
            "--data-dir",
            str(lesion_dataset["data_dir"]),
            "--split-file",
            str(lesion_dataset["split_file"]),
            "--method",
            ",".join(methods),
            "--out",
            str(out),
        ]
    )

    report = json.loads(out.read_text())
    n_val = int((lesion_dataset["table"]["split"] == "val").sum())
    assert (report["split"], report["n_images"]) == ("val", n_val)
    assert report["centre_in_lesion"] == 1.0  # the generated lesions are all near the centre
    assert 0.1 < report["lesion_area_share"] < 0.6
    assert list(report["methods"]) == methods
    assert report["methods"]["gradcam"]["grid"] == [12, 12]
    assert report["methods"][f"layercam@{EARLY_LAYER}"]["grid"] == [24, 24]
    for entry in report["methods"].values():
        assert 0.0 <= entry["pointing_game"] <= 1.0
        assert entry["heat_in_lesion"] is None or 0.0 <= entry["heat_in_lesion"] <= 1.0
        assert 0.0 <= entry["faithfulness"]["map_beats_random"] <= 1.0
        assert -1.0 <= entry["faithfulness"]["map_drop"] <= 1.0


def test_the_command_scores_the_maps_on_shifted_pictures_with_the_moved_masks(nested_version, lesion_dataset, tmp_path):
    clean, shifted = tmp_path / "clean.json", tmp_path / "zoomed.json"
    common = [str(nested_version), "--data-dir", str(lesion_dataset["data_dir"])]
    common += ["--split-file", str(lesion_dataset["split_file"]), "--method", "gradcam"]

    main([*common, "--out", str(clean)])
    main([*common, "--shift", "zoom_out_vignette", "--out", str(shifted)])

    clean_report, shifted_report = json.loads(clean.read_text()), json.loads(shifted.read_text())
    assert shifted_report["shift"] == "zoom_out_vignette"
    assert shifted_report["lesion_area_share"] < clean_report["lesion_area_share"] / 2


def _command(version, lesion_dataset, *options):
    common = [str(version), "--data-dir", str(lesion_dataset["data_dir"])]
    return main([*common, "--split-file", str(lesion_dataset["split_file"]), *options])


def test_the_command_writes_the_served_map_and_its_validation_figures_into_the_card(
    nested_version, lesion_dataset, tmp_path
):
    version = tmp_path / "tiny-nested"
    shutil.copytree(nested_version, version)  # the session's version stays as it is
    before = json.loads((version / "card.json").read_text())
    out = tmp_path / "explanations.json"

    _command(
        version, lesion_dataset, "--method", "gradcam", "--write-card", f"layercam@{EARLY_LAYER}", "--out", str(out)
    )

    report = json.loads(out.read_text())
    card = json.loads((version / "card.json").read_text())
    measured = report["methods"][f"layercam@{EARLY_LAYER}"]
    assert measured["computed_by"] == "the served code"
    entry = card.pop("explanation")
    assert card == before  # nothing else in the card changed
    assert (entry["method"], entry["layer"], entry["grid"]) == ("layer-cam", EARLY_LAYER, [24, 24])
    figures = entry["figures"]
    assert figures["pointing_game"] == measured["pointing_game"]
    assert figures["heat_in_lesion"] == measured["heat_in_lesion"]
    assert figures["faithfulness"] == measured["faithfulness"]
    assert figures["lesion_area"] == report["lesion_area_share"]
    assert figures["centre_baseline"] == report["centre_in_lesion"]
    assert (figures["measured_on"], figures["n"]) == ("validation", report["n_images"])


def test_the_command_writes_grad_cam_as_the_served_map_too(nested_version, lesion_dataset, tmp_path):
    version = tmp_path / "tiny-nested"
    shutil.copytree(nested_version, version)

    _command(
        version, lesion_dataset, "--method", "gradcam", "--write-card", "gradcam", "--out", str(tmp_path / "r.json")
    )

    entry = json.loads((version / "card.json").read_text())["explanation"]
    assert (entry["method"], entry["layer"], entry["grid"]) == ("grad-cam", None, [12, 12])


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--write-card", f"gradcam++@{EARLY_LAYER}"], "serves 'gradcam' or layercam@<layer>"),
        (["--write-card", f"layercam@{EARLY_LAYER}", "--shift", "rotated"], "clean validation"),
        (["--write-card", f"layercam@{EARLY_LAYER}", "--split", "test"], "clean validation"),
    ],
    ids=["a-map-the-worker-cannot-serve", "shifted-pictures", "the-test-split"],
)
def test_the_command_refuses_to_write_figures_the_card_must_not_hold(
    options, reason, nested_version, lesion_dataset, tmp_path, capsys
):
    version = tmp_path / "tiny-nested"
    shutil.copytree(nested_version, version)
    before = (version / "card.json").read_text()

    with pytest.raises(SystemExit):
        _command(version, lesion_dataset, *options, "--out", str(tmp_path / "r.json"))

    assert reason in capsys.readouterr().err
    assert (version / "card.json").read_text() == before
