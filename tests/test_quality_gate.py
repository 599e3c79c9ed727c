from __future__ import annotations

from classifier.quality_gate import quality_gate

ACTIVE = {"balanced_accuracy": 0.80, "melanoma_recall_at_threshold": 0.85}


def test_a_candidate_within_tolerance_and_above_the_floor_passes():
    decision = quality_gate({"balanced_accuracy": 0.79, "melanoma_recall_at_threshold": 0.82}, ACTIVE, 0.02, 0.80)
    assert decision.passed


def test_a_drop_in_balanced_accuracy_beyond_tolerance_fails():
    decision = quality_gate({"balanced_accuracy": 0.77, "melanoma_recall_at_threshold": 0.90}, ACTIVE, 0.02, 0.80)
    assert not decision.passed
    assert "balanced accuracy 0.770 < 0.780" in decision.reasons[0]


def test_melanoma_recall_under_the_floor_fails_even_with_better_accuracy():
    decision = quality_gate({"balanced_accuracy": 0.90, "melanoma_recall_at_threshold": 0.70}, ACTIVE, 0.02, 0.80)
    assert not decision.passed
    assert "melanoma recall 0.700 < floor 0.800" in decision.reasons[1]


def test_without_melanoma_in_the_held_out_set_the_gate_does_not_pass():
    decision = quality_gate({"balanced_accuracy": 0.9, "melanoma_recall_at_threshold": None}, ACTIVE, 0.02, 0.8)
    assert not decision.passed


def test_with_no_active_version_only_the_floor_applies():
    assert quality_gate({"balanced_accuracy": 0.3, "melanoma_recall_at_threshold": 0.9}, None, 0.02, 0.8).passed
