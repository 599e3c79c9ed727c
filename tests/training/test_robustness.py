"""The framing-robustness report: the model's input as serving builds it, and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.tiny_model import tiny_card
from training.card import CardError, parse_card, read_card
from training.preprocessing import crop_box, to_model_input
from training.robustness import card_input_box, main, mean_over, model_input, split_rows
from training.shifts import SHIFTS


def test_a_card_without_a_geometry_gets_the_centre_crop_it_was_served_with(lesion_dataset):
    from tests.training.lesions import lesion_picture

    picture, _ = lesion_picture(np.random.default_rng(0))
    card = parse_card({**tiny_card("v3-like"), "input": "prose, as v1-v3's cards have it"})

    np.testing.assert_array_equal(model_input(picture, card), to_model_input(picture, card.input_size))
    assert card_input_box(picture.size, card) == crop_box(picture.size, card.input_size)


def test_a_card_naming_an_unknown_geometry_is_refused_with_the_name(lesion_dataset):

    with pytest.raises(CardError, match="'input.geometry' must be one of centre_crop, squash, pad, not 'fisheye'"):
        parse_card({**tiny_card("v9"), "input": {"geometry": "fisheye"}})


def test_a_limit_takes_the_same_seeded_sample_of_the_split_every_time(lesion_dataset):
    split_file = lesion_dataset["split_file"]
    everything = split_rows(split_file, "val")

    first, again = split_rows(split_file, "val", limit=5, seed=1), split_rows(split_file, "val", limit=5, seed=1)

    assert len(everything) == (lesion_dataset["table"]["split"] == "val").sum()
    assert first["image_id"].tolist() == again["image_id"].tolist()
    assert set(first["image_id"]) <= set(everything["image_id"])


def test_the_mean_over_the_shifts_leaves_out_clean_and_missing_values():
    def entry(balanced_accuracy, ood_share):
        unset = dict.fromkeys(("macro_f1", "melanoma_recall_top_class", "malignant_sensitivity"), None)
        return {"balanced_accuracy": balanced_accuracy, "ood_share": ood_share, "malignant_specificity": 0.5, **unset}

    conditions = {"clean": entry(1.0, 0.0), "a": entry(0.5, None), "b": entry(0.7, 0.2)}

    means = mean_over(conditions, ["a", "b"])

    assert means["balanced_accuracy"] == pytest.approx(0.6)
    assert means["ood_share"] == pytest.approx(0.2)
    assert means["malignant_specificity"] == pytest.approx(0.5)
    assert means["malignant_sensitivity"] is None


def test_the_command_scores_clean_validation_and_every_shift_and_writes_the_card(
    nested_version, lesion_dataset, tmp_path
):
    out = tmp_path / "robustness.json"
    card_before = json.loads((nested_version / "card.json").read_text())

    main(
        [
            str(nested_version),
            "--data-dir",
            str(lesion_dataset["data_dir"]),
            "--split-file",
            str(lesion_dataset["split_file"]),
            "--out",
            str(out),
            "--write-card",
        ]
    )

    report = json.loads(out.read_text())
    n_val = int((lesion_dataset["table"]["split"] == "val").sum())
    assert (report["split"], report["n_images"], report["sample"]) == ("val", n_val, "all")
    assert list(report["conditions"]) == ["clean", *SHIFTS]
    for entry in report["conditions"].values():
        for key in ("balanced_accuracy", "macro_f1", "malignant_sensitivity", "malignant_specificity", "ood_share"):
            assert 0.0 <= entry[key] <= 1.0
    shifts_bacc = [report["conditions"][name]["balanced_accuracy"] for name in SHIFTS]
    assert report["mean_over_shifts"]["balanced_accuracy"] == pytest.approx(np.mean(shifts_bacc))

    card = read_card(nested_version)  # still a valid card
    summary = card.raw["robustness"]
    assert (summary["split"], summary["n_images"]) == ("val", n_val)
    assert set(summary["shifts"]) == set(SHIFTS)
    assert summary["clean"]["balanced_accuracy"] == round(report["conditions"]["clean"]["balanced_accuracy"], 4)
    assert {key: card.raw[key] for key in card_before} == card_before  # nothing else changed


def test_the_command_runs_a_chosen_subset_of_shifts_on_a_sample(nested_version, lesion_dataset, tmp_path):
    out = tmp_path / "robustness.json"

    main(
        [
            str(nested_version),
            "--data-dir",
            str(lesion_dataset["data_dir"]),
            "--split-file",
            str(lesion_dataset["split_file"]),
            "--shifts",
            "zoom_out_vignette,blur",
            "--limit",
            "6",
            "--out",
            str(out),
        ]
    )

    report = json.loads(out.read_text())
    assert list(report["conditions"]) == ["clean", "zoom_out_vignette", "blur"]
    assert report["n_images"] == 6 and report["sample"].startswith("a random 6 of the split's")


def test_flip_averaging_is_the_mean_of_the_four_mirror_images(nested_version, lesion_dataset):
    import keras

    from training.card import MODEL_FILENAME
    from training.robustness import VersionModel

    plain, averaged = VersionModel(nested_version), VersionModel(nested_version, flips=True)
    pixels = np.random.default_rng(0).uniform(0, 255, (3, *plain.card.input_size, 3)).astype(np.float32)
    model = keras.saving.load_model(nested_version / MODEL_FILENAME, compile=False)
    mirrors = [pixels, pixels[:, :, ::-1], pixels[:, ::-1], pixels[:, ::-1, ::-1]]
    expected = np.mean([np.asarray(model(view, training=False)) for view in mirrors], axis=0)

    assert np.allclose(averaged.features_and_probabilities(pixels)[1], expected, atol=1e-5)
    assert np.allclose(averaged.features_and_probabilities(pixels)[0], plain.features_and_probabilities(pixels)[0])


def test_an_ensemble_averages_its_members_probabilities_and_keeps_the_first_ones_features(nested_version, tmp_path):
    from tests.training.lesions import save_nested_version
    from training.robustness import EnsembleModel, VersionModel

    other = VersionModel(save_nested_version(tmp_path, "tiny-nested-seed-1", seed=1))
    first = VersionModel(nested_version)
    ensemble = EnsembleModel([first, other])
    pixels = np.random.default_rng(0).uniform(0, 255, (3, *first.card.input_size, 3)).astype(np.float32)

    features, probabilities = ensemble.features_and_probabilities(pixels)

    mine, theirs = first.features_and_probabilities(pixels), other.features_and_probabilities(pixels)
    assert not np.allclose(mine[1], theirs[1])  # two different networks, or the mean proves nothing
    assert np.allclose(probabilities, (mine[1] + theirs[1]) / 2, atol=1e-6)
    assert np.allclose(features, mine[0])


def test_an_ensemble_of_two_geometries_is_refused_with_both_names(nested_version, tmp_path):
    from tests.training.lesions import save_nested_version
    from training.robustness import EnsembleModel, VersionModel

    other = VersionModel(save_nested_version(tmp_path, "tiny-nested-squash", seed=1), geometry="squash")

    with pytest.raises(ValueError, match="tiny-nested-squash"):
        EnsembleModel([VersionModel(nested_version), other])


def test_the_ensemble_command_chooses_its_own_threshold_and_names_its_members(nested_version, lesion_dataset, tmp_path):
    from tests.training.lesions import save_nested_version

    other = save_nested_version(tmp_path, "tiny-nested-seed-1", seed=1)
    out = tmp_path / "ensemble.json"
    card_before = read_card(nested_version).raw
    main(
        [
            str(nested_version),
            *("--data-dir", str(lesion_dataset["data_dir"]), "--split-file", str(lesion_dataset["split_file"])),
            *("--shifts", "blur", "--ensemble-with", str(other), "--out", str(out), "--write-card"),
        ]
    )

    report = json.loads(out.read_text())
    assert report["ensemble"] == ["tiny-nested", "tiny-nested-seed-1"]
    assert report["malignant_threshold"] != read_card(nested_version).malignant_threshold
    assert read_card(nested_version).raw == card_before  # a probe never writes the card


def test_the_command_refuses_an_unknown_shift_by_name(nested_version, lesion_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                str(nested_version),
                "--data-dir",
                str(lesion_dataset["data_dir"]),
                "--split-file",
                str(lesion_dataset["split_file"]),
                "--shifts",
                "zoom_in,fisheye",
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
    assert "unknown shifts ['fisheye']" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_the_command_needs_the_masks(nested_version, lesion_dataset, tmp_path, capsys):
    bare = tmp_path / "no-masks"
    (bare / "images").mkdir(parents=True)
    with pytest.raises(SystemExit):
        main(
            [
                str(nested_version),
                "--data-dir",
                str(bare),
                "--split-file",
                str(lesion_dataset["split_file"]),
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
    assert "has no masks/ folder" in capsys.readouterr().err


def test_a_version_without_an_ood_check_reports_no_ood_share(lesion_dataset, tmp_path):
    from tests.tiny_model import save_tiny_version
    from training.robustness import robustness_report, summary_table

    folder = save_tiny_version(tmp_path, "tiny-no-ood")

    report = robustness_report(
        folder, lesion_dataset["data_dir"], lesion_dataset["split_file"], ["jpeg_50"], log=lambda _: None
    )

    assert report["ood_check"] is False
    assert report["conditions"]["clean"]["ood_share"] is None
    assert report["mean_over_shifts"]["ood_share"] is None
    assert summary_table(report).splitlines()[1].rstrip().endswith("-")
