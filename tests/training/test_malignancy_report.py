"""The cross-fitted comparison of the fitted malignancy score with the sum, and both commands end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.training.test_malignancy import confusable
from training.card import read_card
from training.classes import CLASSES
from training.malignancy_report import compare, main


def washed_out(probabilities: np.ndarray, share: float) -> np.ndarray:
    """A shifted picture's reading: pulled towards uniform, so every score is less sure."""
    return (1 - share) * probabilities + share / len(CLASSES)


def test_cross_fitting_scores_both_and_the_fitted_score_wins_where_the_remainder_tells():
    labels, probabilities = confusable(1500, seed=9)
    conditions = {"clean": probabilities, "washed": washed_out(probabilities, 0.4)}

    report = compare(labels, np.arange(len(labels)), conditions, folds=5, seeds=(0, 1))

    assert set(report["fitted_cross_fitted"]) == {"0", "1"}
    for figures in (report["sum"], *report["fitted_cross_fitted"].values()):
        assert [p["target_sensitivity"] for p in figures["points"]] == [0.85, 0.90, 0.95]
        for point in figures["points"]:
            for key in ("clean_specificity", "shifts_sensitivity", "shifts_specificity", "worst_shift_sensitivity"):
                assert 0.0 <= point[key] <= 1.0
    for fitted in report["fitted_cross_fitted"].values():
        assert fitted["auc_clean"] > report["sum"]["auc_clean"] + 0.03
        assert fitted["auc_mean_over_shifts"] > report["sum"]["auc_mean_over_shifts"] + 0.03
        assert fitted["points"][1]["clean_specificity"] > report["sum"]["points"][1]["clean_specificity"]


def test_the_report_command_runs_the_version_on_validation_and_every_shift(nested_version, lesion_dataset, tmp_path):
    out = tmp_path / "malignancy_score.json"

    main([str(nested_version), "--data-dir", str(lesion_dataset["data_dir"]), "--split-file",
          str(lesion_dataset["split_file"]), "--folds", "2", "--fold-seeds", "0", "--out", str(out)])  # fmt: skip

    report = json.loads(out.read_text())
    assert report["n_images"] == int((lesion_dataset["table"]["split"] == "val").sum())
    assert set(report["fitted_cross_fitted"]) == {"0"}
    assert 0.0 <= report["sum"]["auc_clean"] <= 1.0
    assert report["sum"]["shifts_specificity_at_own_90"] is not None
    assert report["folds"] == 2
    assert 0.0 <= report["sum"]["auc_mean_over_shifts"] <= 1.0  # None had no shift been run


def test_the_report_reads_the_probabilities_robustness_saved_instead_of_running_again(
    nested_version, lesion_dataset, tmp_path
):
    from training.robustness import main as robustness_main

    data = ["--data-dir", str(lesion_dataset["data_dir"]), "--split-file", str(lesion_dataset["split_file"])]
    saved = tmp_path / "probabilities.npz"
    robustness_main([str(nested_version), *data, "--out", str(tmp_path / "robustness.json"),
                     "--probabilities-out", str(saved)])  # fmt: skip
    folds = ["--folds", "2", "--fold-seeds", "0"]
    main([str(nested_version), *data, *folds, "--out", str(tmp_path / "run.json")])
    main([str(nested_version), *data, *folds, "--out", str(tmp_path / "read.json"), "--probabilities", str(saved)])

    ran, read = (json.loads((tmp_path / name).read_text()) for name in ("run.json", "read.json"))
    assert read["sum"] == ran["sum"] and read["fitted_cross_fitted"] == ran["fitted_cross_fitted"]


def test_saved_probabilities_of_another_version_or_other_pictures_are_refused(tmp_path):
    from training.robustness import load_probabilities, save_probabilities

    path = tmp_path / "p.npz"
    save_probabilities(path, "v-a", ["x", "y"], {"clean": np.eye(2, 7), "blur": np.eye(2, 7)})

    assert load_probabilities(path, "v-a", ["x", "y"], ["clean", "blur"])["blur"].shape == (2, 7)
    with pytest.raises(ValueError, match="of v-a, not v-b"):
        load_probabilities(path, "v-b", ["x", "y"], ["clean"])
    with pytest.raises(ValueError, match="other pictures"):
        load_probabilities(path, "v-a", ["y", "x"], ["clean"])
    with pytest.raises(ValueError, match="no probabilities for jpeg_50"):
        load_probabilities(path, "v-a", ["x", "y"], ["clean", "jpeg_50"])


def test_the_fit_command_makes_a_derived_version_with_its_own_flag(nested_version, lesion_dataset, tmp_path):
    from training.fit_malignancy import main as fit_main

    new = tmp_path / "tiny-nested-refit"

    fit_main([str(new), "--data-dir", str(lesion_dataset["data_dir"]), "--split-file",
              str(lesion_dataset["split_file"]), "--cache-dir", "", "--derive-from", str(nested_version),
              "--target-sensitivity", "0.95"])  # fmt: skip

    card = read_card(new)
    assert card.version == "tiny-nested-refit"
    assert card.target_sensitivity == 0.95
    assert card.raw["derived_from"]["version"] == read_card(nested_version).version
    # Too few generated malignant pictures to fit on: the sum stays, and says so by having no entry.
    assert "malignancy_score" not in card.raw
    point = next(p for p in card.raw["operating_points"]["points"] if p["target_sensitivity"] == 0.95)
    assert point["threshold"] == card.malignant_threshold
    assert point["val"]["sensitivity"] >= 0.95
    assert (new / "ood.npz").is_file() and (new / "model.keras").is_file()


def test_a_derived_version_that_cannot_be_fitted_is_not_left_behind(nested_version, tmp_path):
    from training.fit_malignancy import main as fit_main

    new = tmp_path / "tiny-nested-broken"
    (tmp_path / "split.csv").write_text("image_id,lesion_id,dx,group,split\n", encoding="utf-8")

    with pytest.raises(ValueError, match="no validation rows"):
        fit_main([str(new), "--data-dir", str(tmp_path), "--split-file", str(tmp_path / "split.csv"),
                  "--cache-dir", "", "--derive-from", str(nested_version)])  # fmt: skip

    assert not new.exists()
