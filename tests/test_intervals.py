"""The 95 % confidence intervals shown beside a version's figures."""

from __future__ import annotations

import pytest

from classifier.lib.intervals import balanced_accuracy_interval, card_intervals, recall_interval, wilson_interval


def test_the_wilson_interval_matches_newcombes_worked_example():
    # Newcombe (1998), Statistics in Medicine 17:857, method 3 for 81/263: 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


@pytest.mark.parametrize(("successes", "n", "low", "high"), [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0)])
def test_a_wilson_interval_at_0_or_1_stays_in_range_and_is_not_a_point(successes, n, low, high):
    interval = wilson_interval(successes, n)
    assert interval == pytest.approx((low, high), abs=1e-4)


def test_fewer_images_give_a_wider_interval():
    small, large = recall_interval(0.8, 10), recall_interval(0.8, 1000)
    assert small[1] - small[0] > 0.4 > 0.06 > large[1] - large[0]


def test_no_images_give_no_interval_and_impossible_counts_are_refused():
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_interval(11, 10)


def test_the_balanced_accuracy_interval_is_the_normal_approximation_of_the_mean_recall():
    # Two classes of 100 images, recalls 0.5 and 0.9: each variance at its Wilson centre.
    z = 1.959964
    centres = [(50 + z * z / 2) / (100 + z * z), (90 + z * z / 2) / (100 + z * z)]
    half = z * (sum(c * (1 - c) / 100 for c in centres)) ** 0.5 / 2

    low, high = balanced_accuracy_interval([(0.5, 100), (0.9, 100)])

    assert (low, high) == pytest.approx((0.7 - half, 0.7 + half))


def test_perfect_recall_on_four_images_a_class_is_far_from_certain():
    low, high = balanced_accuracy_interval([(1.0, 4)] * 7)
    assert high == 1.0 and low < 0.9


def test_classes_without_images_do_not_count():
    assert balanced_accuracy_interval([(0.8, 50), (0.0, 0)]) == balanced_accuracy_interval([(0.8, 50)])
    assert balanced_accuracy_interval([(0.0, 0)]) is None


def test_a_cards_metrics_give_the_intervals_of_its_headline_figures():
    metrics = {
        "balanced_accuracy": 0.85,
        "melanoma_recall_at_threshold": 0.8,
        "per_class": {"mel": {"recall": 0.6, "support": 50}, "nv": {"recall": 0.9, "support": 200}},
    }

    intervals = card_intervals(metrics)

    assert intervals["melanoma_recall_at_threshold"] == wilson_interval(40, 50)
    assert intervals["recall_nv"] == wilson_interval(180, 200)
    assert intervals["balanced_accuracy"] == balanced_accuracy_interval([(0.6, 50), (0.9, 200)])


def test_a_card_without_per_class_figures_has_no_intervals():
    assert card_intervals({"balanced_accuracy": 0.7}) == {
        "balanced_accuracy": None,
        "melanoma_recall_at_threshold": None,
    }
