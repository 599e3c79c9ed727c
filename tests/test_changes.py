"""Change flags between consecutive visits of a lesion (classifier.lib.changes)."""

from __future__ import annotations

import datetime as dt

import pytest

from classifier.lib.changes import Visit, compare_visits


def visit(key, day, score=0.2, top="nv", version="v3", area=None, no_reading=""):
    return Visit(key, dt.date(2026, 1, day), version, None if no_reading else score, "" if no_reading else top,
                 area, no_reading)  # fmt: skip


def test_a_rise_of_the_score_by_more_than_the_threshold_is_flagged_in_plain_words():
    changes = compare_visits([visit(1, 1, score=0.31), visit(2, 20, score=0.52)])

    (flag,) = changes.flags
    assert (flag.kind, flag.before.key, flag.after.key) == ("score-rose", 1, 2)
    assert flag.sentence == "Malignancy score rose from 0.31 to 0.52 (threshold for a flag: +0.10)."
    assert changes.notes == ()
    assert changes.flagged_keys == {2}


def test_a_rise_of_exactly_the_threshold_a_small_rise_or_a_fall_is_not_flagged():
    assert compare_visits([visit(1, 1, score=0.31), visit(2, 2, score=0.41)]).flags == ()  # 0.1 in floats
    assert compare_visits([visit(1, 1, score=0.31), visit(2, 2, score=0.38)]).flags == ()
    assert compare_visits([visit(1, 1, score=0.8), visit(2, 2, score=0.2)]).flags == ()


def test_the_score_threshold_is_configurable():
    visits = [visit(1, 1, score=0.30), visit(2, 2, score=0.36)]
    (flag,) = compare_visits(visits, score_rise=0.05).flags
    assert flag.sentence.endswith("(threshold for a flag: +0.05).")
    with pytest.raises(ValueError, match="cannot be negative"):
        compare_visits(visits, score_rise=-0.1)


def test_a_change_of_the_top_class_is_flagged_with_the_class_names():
    (flag,) = compare_visits([visit(1, 1, top="nv"), visit(2, 2, top="mel")]).flags
    assert flag.kind == "top-class-changed"
    assert flag.sentence == "Most likely class changed from Melanocytic nevus (nv) to Melanoma (mel)."


def test_visits_are_compared_in_date_order_whatever_order_they_come_in():
    changes = compare_visits([visit("c", 30, score=0.7), visit("a", 1, score=0.1), visit("b", 15, score=0.4)])
    assert [(flag.before.key, flag.after.key) for flag in changes.flags] == [("a", "b"), ("b", "c")]


def test_an_area_change_is_flagged_only_when_both_visits_have_one_and_says_it_is_relative():
    (flag,) = compare_visits([visit(1, 1, area=0.20), visit(2, 2, area=0.27)]).flags
    assert flag.kind == "area-changed"
    assert flag.sentence.startswith("Lesion area relative to the frame grew by 35 % (from 20 % to 27 % of the picture)")
    assert "relative to the picture, not a measured size" in flag.sentence

    (shrank,) = compare_visits([visit(1, 1, area=0.08), visit(2, 2, area=0.05)]).flags
    assert "shrank by 38 % (from 8.0 % to 5.0 % of the picture)" in shrank.sentence

    assert compare_visits([visit(1, 1, area=0.20), visit(2, 2, area=0.24)]).flags == ()  # 20 %, under 25 %
    assert compare_visits([visit(1, 1, area=0.20), visit(2, 2, area=None)]).flags == ()
    assert compare_visits([visit(1, 1, area=0.0), visit(2, 2, area=0.3)]).flags == ()  # no outline found
    assert compare_visits([visit(1, 1, area=0.20), visit(2, 2, area=0.24)], area_change=0.1).flags != ()


def test_a_visit_without_a_reading_is_skipped_with_a_note_and_its_neighbours_are_compared():
    changes = compare_visits([
        visit(1, 1, score=0.2, top="nv"),
        visit(2, 10, no_reading="out of distribution"),
        visit(3, 20, no_reading="failed"),
        visit(4, 30, score=0.5, top="nv"),
    ])  # fmt: skip

    (flag,) = changes.flags
    assert (flag.before.key, flag.after.key) == (1, 4)
    assert [(note.kind, note.visit.key) for note in changes.notes] == [("no-reading", 2), ("no-reading", 3)]
    assert changes.notes[0].sentence == (
        "The picture of 2026-01-10 has no reading (out of distribution): it is left out of the change flags, "
        "which compare the visits that have one."
    )


def test_readings_by_different_model_versions_are_not_compared_but_said_so():
    changes = compare_visits([visit(1, 1, score=0.1, top="nv", version="v2"),
                              visit(2, 2, score=0.9, top="mel", version="v3"),
                              visit(3, 3, score=0.95, top="mel", version="v3")])  # fmt: skip

    assert changes.flags == ()
    (note,) = changes.notes
    assert (note.kind, note.other.key, note.visit.key) == ("model-changed", 1, 2)
    assert "different model versions (v2 and v3)" in note.sentence
    assert "may be the model's, not the lesion's" in note.sentence


def test_one_visit_or_none_gives_nothing():
    assert compare_visits([visit(1, 1)]).flags == compare_visits([]).flags == ()


def test_dates_and_aware_datetimes_mix():
    morning = Visit("a", dt.datetime(2026, 1, 2, 9, tzinfo=dt.UTC), "v3", 0.1, "nv")
    day_before = Visit("b", dt.date(2026, 1, 1), "v3", 0.5, "nv")
    (flag,) = compare_visits([morning, day_before, Visit("c", dt.datetime(2026, 1, 3), "v3", 0.7, "nv")]).flags
    assert (flag.before.key, flag.after.key) == ("a", "c")
    assert compare_visits([morning, day_before]).flags_for("a") == ()
