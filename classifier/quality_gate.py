"""The quality gate: may a newly trained model replace the active one without a human?"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from training.classes import CLASSES

PASSED, FAILED, NOT_CHECKED = "passed", "failed", "not checked"


@dataclass(frozen=True)
class GateCheck:
    name: str
    result: str  # PASSED, FAILED or NOT_CHECKED
    detail: str  # a sentence of its own: the figures compared

    @property
    def reason(self) -> str:
        return f"{self.result}: {self.detail}"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    checks: list[GateCheck] = field(default_factory=list)
    refused: bool = False  # too few held-out images to judge at all

    @property
    def reasons(self) -> list[str]:
        """One line per check, each saying whether it passed."""
        return [check.reason for check in self.checks]

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "refused": self.refused,
            "reasons": self.reasons,
            "checks": [asdict(check) for check in self.checks],
        }


def quality_gate(
    candidate: dict,
    incumbent: dict | None,
    max_balanced_accuracy_drop: float,
    min_melanoma_recall: float,
    min_held_out_per_class: int = 1,
    validation: dict | None = None,
) -> GateDecision:
    """Compare metrics measured on the same held-out images.

    ``candidate`` and ``incumbent`` are the two versions' test metrics,
    ``validation`` the candidate's validation metrics (where its temperature and
    threshold were chosen). The gate refuses to judge, and so does not pass, when
    either part has fewer than ``min_held_out_per_class`` images of some class: the
    figures would mean nothing. Otherwise it passes when the candidate's balanced
    accuracy is no more than the tolerance below the incumbent's, and its melanoma
    recall at its own threshold is at or above the floor (missing a melanoma costs
    more than a false alarm).
    """
    checks = [
        _enough_images("held-out images", candidate, min_held_out_per_class),
        _enough_images("validation images", validation, min_held_out_per_class),
    ]
    if any(check.result == FAILED for check in checks):
        return GateDecision(passed=False, checks=checks, refused=True)

    bacc = candidate.get("balanced_accuracy")
    if incumbent is None:
        checks.append(
            GateCheck("balanced accuracy", NOT_CHECKED, "balanced accuracy: no active version to compare with")
        )
    else:
        floor = incumbent["balanced_accuracy"] - max_balanced_accuracy_drop
        ok = bacc is not None and bacc >= floor
        checks.append(
            GateCheck(
                "balanced accuracy",
                PASSED if ok else FAILED,
                f"balanced accuracy {_number(bacc)} {'≥' if ok else '<'} {floor:.3f} "
                f"(active {incumbent['balanced_accuracy']:.3f} − tolerance {max_balanced_accuracy_drop:.3f})",
            )
        )
    mel_recall = candidate.get("melanoma_recall_at_threshold")
    if mel_recall is None:
        checks.append(
            GateCheck("melanoma recall", FAILED, "no melanoma in the held-out set: melanoma recall cannot be checked")
        )
    else:
        ok = mel_recall >= min_melanoma_recall
        checks.append(
            GateCheck(
                "melanoma recall",
                PASSED if ok else FAILED,
                f"melanoma recall {mel_recall:.3f} {'≥' if ok else '<'} floor {min_melanoma_recall:.3f} "
                "(at its own threshold)",
            )
        )
    return GateDecision(passed=all(check.result != FAILED for check in checks), checks=checks)


def _enough_images(name: str, metrics: dict | None, minimum: int) -> GateCheck:
    """Does every class have at least ``minimum`` images in this part (its per-class support)?"""
    per_class = (metrics or {}).get("per_class") or {}
    counts = {code: int((per_class.get(code) or {}).get("support", 0)) for code in CLASSES}
    listed = ", ".join(f"{counts[code]} {code}" for code in CLASSES)
    if min(counts.values()) < minimum:
        return GateCheck(name, FAILED, f"not enough {name}: {listed} (at least {minimum} of each)")
    return GateCheck(name, PASSED, f"{name}: {listed} (at least {minimum} of each)")


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"
