"""95 % confidence intervals for the figures a model card reports, from its per-class recall and support.

Recalls are proportions of a class's held-out images, so each gets a Wilson score
interval (Wilson 1927), which stays inside [0, 1] and does not collapse to a point
for a recall of 0 or 1 on a few images. Balanced accuracy is the mean of the
per-class recalls: its interval is a normal approximation, the mean ± z times the
standard error of a mean of independent proportions, with each class's variance
taken at its Wilson centre so that a class recalled perfectly on 4 images still
counts as uncertain.
"""

from __future__ import annotations

import math

Z_95 = 1.959964  # two-sided 95 % of the standard normal


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of successes / n, or None when n is 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n ({n}), not {successes}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def recall_interval(recall: float, support: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson interval of a recall measured on ``support`` images."""
    return wilson_interval(round(recall * support), support, z)


def balanced_accuracy_interval(
    recalls_and_supports: list[tuple[float, int]], z: float = Z_95
) -> tuple[float, float] | None:
    """Normal-approximation interval of the mean of per-class recalls (classes with images only)."""
    classes = [(recall, n) for recall, n in recalls_and_supports if n > 0]
    if not classes:
        return None
    k = len(classes)
    mean = sum(recall for recall, _ in classes) / k
    variance = 0.0
    for recall, n in classes:
        shrunk = (round(recall * n) + z * z / 2) / (n + z * z)  # the Wilson centre
        variance += shrunk * (1 - shrunk) / n
    half = z * math.sqrt(variance) / k
    return max(0.0, mean - half), min(1.0, mean + half)


def card_intervals(metrics: dict) -> dict[str, tuple[float, float] | None]:
    """The intervals of one split's metrics (a card's ``metrics.test``): balanced accuracy,
    melanoma recall at the threshold, and each class's recall."""
    per_class = metrics.get("per_class") or {}
    intervals: dict[str, tuple[float, float] | None] = {
        "balanced_accuracy": balanced_accuracy_interval(
            [(stats.get("recall", 0.0), int(stats.get("support", 0))) for stats in per_class.values()]
        )
        if per_class
        else None
    }
    mel_recall = metrics.get("melanoma_recall_at_threshold")
    mel_support = int((per_class.get("mel") or {}).get("support", 0))
    intervals["melanoma_recall_at_threshold"] = (
        recall_interval(mel_recall, mel_support) if mel_recall is not None and mel_support else None
    )
    for code, stats in per_class.items():
        intervals[f"recall_{code}"] = recall_interval(stats.get("recall", 0.0), int(stats.get("support", 0)))
    return intervals
