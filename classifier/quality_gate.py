"""The quality gate: may a newly trained model replace the active one without a human?"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def quality_gate(
    candidate: dict, incumbent: dict | None, max_balanced_accuracy_drop: float, min_melanoma_recall: float
) -> GateDecision:
    """Compare metrics measured on the same held-out images.

    Passes when the candidate's balanced accuracy is no more than the tolerance
    below the incumbent's, and its melanoma recall at its own threshold is at or
    above the floor (missing a melanoma costs more than a false alarm).
    """
    reasons = []
    passed = True
    bacc = candidate.get("balanced_accuracy")
    mel_recall = candidate.get("melanoma_recall_at_threshold")
    if incumbent is not None:
        floor = incumbent["balanced_accuracy"] - max_balanced_accuracy_drop
        ok = bacc is not None and bacc >= floor
        passed &= ok
        reasons.append(
            f"balanced accuracy {bacc:.3f} {'≥' if ok else '<'} {floor:.3f} "
            f"(active {incumbent['balanced_accuracy']:.3f} − tolerance {max_balanced_accuracy_drop:.3f})"
        )
    else:
        reasons.append("no active version to compare with")
    if mel_recall is None:
        passed = False
        reasons.append("no melanoma in the held-out set: melanoma recall cannot be checked")
    else:
        ok = mel_recall >= min_melanoma_recall
        passed &= ok
        reasons.append(f"melanoma recall {mel_recall:.3f} {'≥' if ok else '<'} floor {min_melanoma_recall:.3f}")
    return GateDecision(passed=bool(passed), reasons=reasons)
