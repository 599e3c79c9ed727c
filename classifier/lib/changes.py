"""Change flags between consecutive visits of a lesion: "has it changed?" in the model's terms.

Three flags, each with a sentence a clinician can read as it stands:

- the malignancy score rose by more than ``score_rise`` (absolute, default 0.10);
- the most likely class changed;
- the lesion's area relative to the frame changed by more than ``area_change``
  (relative, default 0.25), when both visits have one (a model that outlines the
  lesion). The area is a fraction of the picture, not a measured size: nothing in a
  dermatoscopic picture calibrates it, and a different distance or zoom changes it too.

Visits without a reading (out of distribution, failed, still pending) never produce
a flag: they are skipped, a note says so, and the visits on either side of them are
compared instead.

Only readings by the same model version are compared. A new version gives different
scores and classes for the very same picture, so a flag across versions would report
a model change as a lesion change (a false alarm after every update, or a real rise
hidden by a better-calibrated model). Rather than guess, the pair gets a note saying
that the model changed between them and that re-reading the earlier picture with the
current version makes them comparable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from training.classes import FULL_NAMES

SCORE_RISE = 0.10  # absolute rise of the malignancy score that flags a visit
AREA_CHANGE = 0.25  # relative change of the lesion's area fraction that flags a visit
_EPSILON = 1e-9  # so a rise of exactly the threshold (0.31 -> 0.41 in floats) is not a rise "by more than" it


@dataclass(frozen=True)
class Visit:
    """One reading of a lesion at one visit, as the comparison needs it.

    ``key`` is the caller's handle on it (an image id); ``no_reading`` says why there is
    no reading ("out of distribution", "failed", "pending") or is "" when there is one.
    ``lesion_area`` is the lesion's area as a fraction of the frame, when the model outlined it.
    """

    key: Hashable
    taken_at: dt.date | dt.datetime
    model_version: str
    malignancy_score: float | None = None
    top_class: str = ""
    lesion_area: float | None = None
    no_reading: str = ""

    @property
    def has_reading(self) -> bool:
        return not self.no_reading and self.malignancy_score is not None

    @property
    def date_words(self) -> str:
        return self.taken_at.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class ChangeFlag:
    """A change between two consecutive visits with readings: kind is "score-rose", "top-class-changed" or
    "area-changed"."""

    kind: str
    before: Visit
    after: Visit
    sentence: str


@dataclass(frozen=True)
class ChangeNote:
    """Why a visit or a pair of visits was not compared: kind is "no-reading" or "model-changed"."""

    kind: str
    visit: Visit
    sentence: str
    other: Visit | None = None  # the earlier visit, for "model-changed"


@dataclass(frozen=True)
class Changes:
    flags: tuple[ChangeFlag, ...]
    notes: tuple[ChangeNote, ...]

    def flags_for(self, key: Hashable) -> tuple[ChangeFlag, ...]:
        """The flags raised at one visit (against the visit before it)."""
        return tuple(flag for flag in self.flags if flag.after.key == key)

    @property
    def flagged_keys(self) -> frozenset[Hashable]:
        return frozenset(flag.after.key for flag in self.flags)


def percent(fraction: float) -> str:
    """ "35 %", or "4.5 %" below 10 % (a small lesion's share of the frame)."""
    value = 100 * fraction
    return f"{value:.1f} %" if value < 10 else f"{value:.0f} %"


def class_words(code: str) -> str:
    name = FULL_NAMES.get(code)
    return f"{name} ({code})" if name else code


def compare_visits(
    visits: Iterable[Visit], *, score_rise: float = SCORE_RISE, area_change: float = AREA_CHANGE
) -> Changes:
    """The change flags and the notes for a lesion's visits, in date order (the order given breaks ties)."""
    if score_rise < 0 or area_change < 0:
        raise ValueError("the thresholds are amounts of change and cannot be negative")
    ordered = sorted(visits, key=lambda visit: _sort_key(visit.taken_at))
    flags: list[ChangeFlag] = []
    notes: list[ChangeNote] = []
    previous: Visit | None = None
    for visit in ordered:
        if not visit.has_reading:
            notes.append(ChangeNote("no-reading", visit, _skipped(visit)))
            continue
        if previous is not None:
            if previous.model_version != visit.model_version:
                notes.append(ChangeNote("model-changed", visit, _model_changed(previous, visit), other=previous))
            else:
                flags += _flags(previous, visit, score_rise, area_change)
        previous = visit
    return Changes(tuple(flags), tuple(notes))


def _flags(before: Visit, after: Visit, score_rise: float, area_change: float) -> list[ChangeFlag]:
    flags = []
    if after.malignancy_score - before.malignancy_score > score_rise + _EPSILON:
        sentence = (
            f"Malignancy score rose from {before.malignancy_score:.2f} to {after.malignancy_score:.2f} "
            f"(threshold for a flag: +{score_rise:.2f})."
        )
        flags.append(ChangeFlag("score-rose", before, after, sentence))
    if before.top_class and after.top_class and before.top_class != after.top_class:
        sentence = f"Most likely class changed from {class_words(before.top_class)} to {class_words(after.top_class)}."
        flags.append(ChangeFlag("top-class-changed", before, after, sentence))
    if before.lesion_area and after.lesion_area and before.lesion_area > 0 and after.lesion_area > 0:
        relative = after.lesion_area / before.lesion_area - 1
        if abs(relative) > area_change + _EPSILON:
            sentence = (
                f"Lesion area relative to the frame {'grew' if relative > 0 else 'shrank'} by {percent(abs(relative))} "
                f"(from {percent(before.lesion_area)} to {percent(after.lesion_area)} of the picture) — relative to "
                "the picture, not a measured size: the camera's distance and zoom change it too "
                f"(threshold for a flag: {percent(area_change)})."
            )
            flags.append(ChangeFlag("area-changed", before, after, sentence))
    return flags


def _skipped(visit: Visit) -> str:
    return (
        f"The picture of {visit.date_words} has no reading ({visit.no_reading or 'no reading'}): it is left out "
        "of the change flags, which compare the visits that have one."
    )


def _model_changed(before: Visit, after: Visit) -> str:
    return (
        f"The pictures of {before.date_words} and {after.date_words} were read by different model versions "
        f"({before.model_version or 'unknown'} and {after.model_version or 'unknown'}), so their scores and classes "
        "were not compared: a change there may be the model's, not the lesion's. Re-reading the earlier picture "
        "with the current version makes them comparable."
    )


def _sort_key(moment: dt.date | dt.datetime) -> dt.datetime:
    """Dates sort as the start of their day and aware datetimes by their UTC time, so the kinds can be mixed."""
    if not isinstance(moment, dt.datetime):
        return dt.datetime.combine(moment, dt.time())
    if moment.tzinfo is not None:
        return moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment
