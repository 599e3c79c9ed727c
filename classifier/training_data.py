"""Which labelled images a retraining job trains and judges on, and whether there are enough.

The web side asks before it queues a job, the job asks again when it starts: both
call ``require_enough_labelled_images`` on counts made with the same split, so a
job the form accepts does not fail 20 s later for want of data.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

from training.classes import CLASSES
from training.data import DEFAULT_SPLIT_FILE, read_split

# Groups not in the saved HAM10000 split are placed by a hash of their key, so the
# held-out set stays the same as labels accumulate: 15 % test, 15 % validation.
HASH_TEST_PERCENT, HASH_VAL_PERCENT = 15, 15
PARTS = ("train", "val", "test")
PART_NAMES = {"train": "train", "val": "validation", "test": "test"}
# Training needs every class once, or the new head learns to never predict it; the
# held-out parts need TRAINING_GATE_MIN_HELD_OUT_PER_CLASS of each (see settings).
MIN_TRAIN_PER_CLASS = 1

Counts = dict[str, dict[str, int]]  # part → class code → labelled images


class NotEnoughData(ValueError):
    """Too few labelled images of some class in some part; ``counts`` says how many there are."""

    def __init__(self, message: str, counts: Counts, minimum: dict[str, int]):
        super().__init__(message)
        self.counts, self.minimum = counts, minimum


def group_key(source_lesion_id: str, sha256: str, lesion_pk: int | None = None) -> str:
    """Images of one lesion share a key, so a lesion's pictures stay in one part: the dataset's
    lesion id when it was imported with one (HAM10000's saved split places it), else the
    clinic's lesion it is a picture of; an image of neither is its own group."""
    if source_lesion_id:
        return f"lesion:{source_lesion_id}"
    if lesion_pk is not None:
        return f"clinic-lesion:{lesion_pk}"
    return f"image:{sha256}"


def assign_split(key: str, saved: dict[str, str]) -> str:
    """The saved HAM10000 split for its lesions (so the shipped model's test images stay
    held out), else a stable hash of the group key."""
    if key.startswith("lesion:") and key[len("lesion:") :] in saved:
        return saved[key[len("lesion:") :]]
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < HASH_TEST_PERCENT else "val" if bucket < HASH_TEST_PERCENT + HASH_VAL_PERCENT else "train"


def saved_lesion_splits(split_file: Path = DEFAULT_SPLIT_FILE) -> dict[str, str]:
    if not Path(split_file).is_file():
        return {}
    split = read_split(split_file)
    return dict(zip(split["lesion_id"], split["split"], strict=True))


def count_by_part(parts_and_diagnoses: Iterable[tuple[str, str]]) -> Counts:
    """(part, diagnosis) pairs → images per class in each part, every class listed."""
    tally = Counter(parts_and_diagnoses)
    return {part: {code: tally[(part, code)] for code in CLASSES} for part in PARTS}


def labelled_counts() -> Counts:
    """How many labelled images of each class each part holds now (what a job would train on)."""
    from classifier.models import LesionImage

    saved = saved_lesion_splits()
    rows = LesionImage.objects.exclude(diagnosis="").values_list("source_lesion_id", "sha256", "lesion_id", "diagnosis")
    return count_by_part((assign_split(group_key(source, sha, lesion), saved), dx) for source, sha, lesion, dx in rows)


def minimum_per_class() -> dict[str, int]:
    held_out = settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS
    return {"train": MIN_TRAIN_PER_CLASS, "val": held_out, "test": held_out}


def require_enough_labelled_images(counts: Counts, minimum: dict[str, int] | None = None) -> None:
    """The rule a job must meet to train and be judged: raise NotEnoughData naming the counts.

    Validation chooses the temperature and the malignancy threshold, test is what the
    quality gate judges on: a class with a handful of images there gives figures that
    mean nothing (a threshold of 1.0 chosen on 4 images), so both need the same minimum
    the gate asks for.
    """
    minimum = minimum or minimum_per_class()
    short = [part for part in PARTS if min(counts[part].values()) < minimum[part]]
    if not short:
        return
    needs = f"at least {minimum['train']} in train, {minimum['val']} in validation and {minimum['test']} in test"
    now = "; ".join(f"{PART_NAMES[part]}: {describe_counts(counts[part])}" for part in PARTS)
    raise NotEnoughData(
        f"Not enough labelled images to train and evaluate: each of the seven classes needs {needs}. "
        f"Labelled now, {now}. Label more images (of several lesions: a lesion's images stay in one part).",
        counts,
        minimum,
    )


def describe_counts(per_class: dict[str, int]) -> str:
    """'0 akiec, 3 bcc, …' in the classes' order."""
    return ", ".join(f"{per_class.get(code, 0)} {code}" for code in CLASSES)
