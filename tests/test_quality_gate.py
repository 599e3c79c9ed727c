from __future__ import annotations

from classifier.quality_gate import quality_gate
from training.classes import CLASSES

ACTIVE = {"balanced_accuracy": 0.80, "melanoma_recall_at_threshold": 0.85}


def part(images_per_class: int = 20, **metrics) -> dict:
    """A split's metrics as training.evaluate writes them: per-class support, and the given figures."""
    support = {code: images_per_class for code in CLASSES}
    support.update({code: n for code, n in metrics.pop("support", {}).items()})
    return {"per_class": {code: {"recall": 0.8, "support": n} for code, n in support.items()}, **metrics}


def judge(candidate: dict, incumbent=ACTIVE, validation=None, minimum: int = 10):
    return quality_gate(candidate, incumbent, 0.02, 0.80, minimum, part() if validation is None else validation)


def test_a_candidate_within_tolerance_and_above_the_floor_passes():
    decision = judge(part(balanced_accuracy=0.79, melanoma_recall_at_threshold=0.82))
    assert decision.passed and not decision.refused


def test_a_drop_in_balanced_accuracy_beyond_tolerance_fails():
    decision = judge(part(balanced_accuracy=0.77, melanoma_recall_at_threshold=0.90))
    assert not decision.passed
    assert "failed: balanced accuracy 0.770 < 0.780 (active 0.800 − tolerance 0.020)" in decision.reasons


def test_melanoma_recall_under_the_floor_fails_even_with_better_accuracy():
    decision = judge(part(balanced_accuracy=0.90, melanoma_recall_at_threshold=0.70))
    assert not decision.passed
    assert "failed: melanoma recall 0.700 < floor 0.800 (at its own threshold)" in decision.reasons


def test_without_melanoma_in_the_held_out_set_the_gate_does_not_pass():
    decision = judge(part(balanced_accuracy=0.9, melanoma_recall_at_threshold=None), minimum=1)
    assert not decision.passed


def test_with_no_active_version_only_the_floor_applies():
    decision = judge(part(balanced_accuracy=0.3, melanoma_recall_at_threshold=0.9), incumbent=None)
    assert decision.passed
    assert "not checked: balanced accuracy: no active version to compare with" in decision.reasons


def test_the_reasons_say_which_checks_passed_and_which_failed():
    decision = judge(part(balanced_accuracy=0.79, melanoma_recall_at_threshold=0.70))

    assert [(check.name, check.result) for check in decision.checks] == [
        ("held-out images", "passed"),
        ("validation images", "passed"),
        ("balanced accuracy", "passed"),
        ("melanoma recall", "failed"),
    ]
    assert decision.reasons[0] == (
        "passed: held-out images: 20 akiec, 20 bcc, 20 bkl, 20 df, 20 mel, 20 nv, 20 vasc (at least 10 of each)"
    )
    assert decision.as_dict()["checks"][3]["result"] == "failed"


def test_it_refuses_to_judge_on_too_few_held_out_images_of_a_class():
    # Perfect figures on a handful of images: what a job evaluated on 4 images showed.
    candidate = part(balanced_accuracy=1.0, melanoma_recall_at_threshold=1.0, support={"mel": 1, "akiec": 0, "df": 9})

    decision = judge(candidate)

    assert not decision.passed and decision.refused
    assert decision.reasons[0] == (
        "failed: not enough held-out images: 0 akiec, 20 bcc, 20 bkl, 9 df, 1 mel, 20 nv, 20 vasc (at least 10 of each)"
    )
    # Nothing else is judged on figures that mean nothing.
    assert [check.name for check in decision.checks] == ["held-out images", "validation images"]


def test_it_refuses_to_judge_when_the_threshold_was_chosen_on_too_few_validation_images():
    good = part(balanced_accuracy=0.9, melanoma_recall_at_threshold=0.9)

    decision = judge(good, validation=part(support={"vasc": 3}))

    assert not decision.passed and decision.refused
    assert (
        "failed: not enough validation images: 20 akiec, 20 bcc, 20 bkl, 20 df, 20 mel, 20 nv, 3 vasc"
        in (decision.reasons[1])
    )


def test_metrics_without_per_class_counts_are_not_judged():
    decision = quality_gate({"balanced_accuracy": 0.9, "melanoma_recall_at_threshold": 0.9}, ACTIVE, 0.02, 0.8, 1)
    assert not decision.passed and decision.refused
