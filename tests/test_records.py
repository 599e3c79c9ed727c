"""classifier.records: a lesion's pictures as visits, their change flags, the list's rows, the comparison."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from classifier import records
from classifier.models import ModelVersion
from tests.factories import make_lesion, make_patient, make_visit

pytestmark = pytest.mark.django_db


def day(n: int) -> dt.datetime:
    """Noon n days after 2026-01-01, in the site's time zone."""
    return timezone.make_aware(dt.datetime(2026, 1, 1, 12) + dt.timedelta(days=n))


@pytest.fixture
def lesion(clinic):
    return make_lesion(make_patient(clinic, "MRN-1"), site="back", side="left", label="L1, left scapula",
                       map_view="back", map_x=0.4, map_y=0.3)  # fmt: skip


def test_visits_come_in_the_order_they_were_taken_not_uploaded(owner, lesion):
    later = make_visit(owner, lesion, day(90))
    earlier = make_visit(owner, lesion, day(0))

    record = records.lesion_record(lesion)

    assert [visit.image for visit in record.visits] == [earlier, later]
    assert record.latest.image == later


def test_a_score_rise_above_the_setting_flags_the_later_visit(owner, lesion, settings):
    settings.CHANGE_SCORE_RISE = 0.10
    first = make_visit(owner, lesion, day(0), score=0.20)
    second = make_visit(owner, lesion, day(60), score=0.28)
    third = make_visit(owner, lesion, day(120), score=0.45)

    record = records.lesion_record(lesion)

    assert [[flag.kind for flag in visit.flags] for visit in record.visits] == [[], [], ["score-rose"]]
    assert record.changes.flags[0].before.key == second.pk and record.changes.flags[0].after.key == third.pk
    assert first.pk not in record.changes.flagged_keys

    settings.CHANGE_SCORE_RISE = 0.05
    assert [bool(visit.flags) for visit in records.lesion_record(lesion).visits] == [False, True, True]


def test_the_area_flag_needs_an_outline_on_both_visits_and_says_it_is_relative(owner, lesion, settings):
    settings.CHANGE_AREA_FRACTION = 0.25
    make_visit(owner, lesion, day(0), lesion_outline={"area": 0.10, "grid": [[1]], "box": [0, 0, 1, 1]})
    make_visit(owner, lesion, day(30))  # no outline: a version without a lesion mask
    make_visit(owner, lesion, day(60), lesion_outline={"area": 0.20, "grid": [[1]], "box": [0, 0, 1, 1]})
    make_visit(owner, lesion, day(90), lesion_outline={"area": 0.30, "grid": [[1]], "box": [0, 0, 1, 1]})

    record = records.lesion_record(lesion)

    kinds = [[flag.kind for flag in visit.flags] for visit in record.visits]
    assert kinds == [[], [], [], ["area-changed"]]
    sentence = record.visits[-1].flags[0].sentence
    assert "grew by 50 %" in sentence and "not a measured size" in sentence


def test_readings_of_different_model_versions_are_noted_not_flagged(owner, lesion):
    old, new = (ModelVersion.objects.create(name=name, directory=name, card={}, malignant_threshold=0.5)
                for name in ("v1", "v2"))  # fmt: skip
    make_visit(owner, lesion, day(0), score=0.1, top_class="nv", model_version=old)
    make_visit(owner, lesion, day(60), score=0.9, top_class="mel", model_version=new)

    record = records.lesion_record(lesion)

    assert record.changes.flags == ()
    assert [note.kind for note in record.visits[1].notes] == ["model-changed"]


def test_a_visit_without_a_reading_is_skipped_and_its_neighbours_compared(owner, lesion):
    make_visit(owner, lesion, day(0), score=0.1)
    pending = make_visit(owner, lesion, day(30), score=None)
    make_visit(owner, lesion, day(60), score=0.1, top_class="bkl")

    record = records.lesion_record(lesion)

    assert record.visits[1].image == pending and record.visits[1].reading == "Waiting for the model"
    assert [note.kind for note in record.visits[1].notes] == ["no-reading"]
    assert [flag.kind for flag in record.visits[2].flags] == ["top-class-changed"]
    assert record.latest_reading.image == record.visits[2].image


def test_an_out_of_distribution_picture_has_no_reading_and_no_flag(owner, lesion):
    make_visit(owner, lesion, day(0), score=0.1)
    make_visit(owner, lesion, day(30), score=0.9, top_class="mel", is_out_of_distribution=True, is_malignant=None)

    record = records.lesion_record(lesion)

    assert record.visits[1].reading == "No reading: not like a dermatoscopic image"
    assert not record.visits[1].is_suspicious and record.changes.flags == ()
    assert record.state == "no-reading" and record.attention == ()


def test_a_lesion_needs_a_look_when_its_latest_reading_is_suspicious_or_changed(owner, clinic):
    patient = make_patient(clinic)
    quiet, suspicious, changed, was_suspicious = (make_lesion(patient, label=name) for name in "ABCD")
    make_visit(owner, quiet, day(0), score=0.1)
    make_visit(owner, suspicious, day(0), score=0.7)
    make_visit(owner, changed, day(0), score=0.1, top_class="nv")
    make_visit(owner, changed, day(30), score=0.15, top_class="bkl")
    make_visit(owner, was_suspicious, day(0), score=0.7)
    make_visit(owner, was_suspicious, day(30), score=0.3)  # a fall is not a change flag

    attention = {record.lesion.label: record.attention for record in records.patient_lesions(patient)}

    assert attention == {"A": (), "B": ("suspicious",), "C": ("changed",), "D": ()}


def test_the_list_rows_give_lesion_counts_last_visits_and_who_needs_a_look(owner, clinic, other_clinic):
    calm, worrying, empty = (make_patient(clinic, reference) for reference in ("MRN-1", "MRN-2", "MRN-3"))
    for patient in (calm, worrying):
        make_lesion(patient)
    mole = make_lesion(worrying, label="L2")
    make_visit(owner, calm.lesions.first(), day(10), score=0.1)
    make_visit(owner, mole, day(20), score=0.1)
    make_visit(owner, mole, day(40), score=0.8)
    make_patient(other_clinic, "MRN-1")

    rows = records.patient_rows(records.clinic_patients(clinic))

    assert [(row.patient.reference, row.lesion_count) for row in rows] == [("MRN-1", 1), ("MRN-2", 2), ("MRN-3", 0)]
    assert [row.last_visit.date() if row.last_visit else None for row in rows] == [day(10).date(), day(40).date(), None]
    assert [row.needs_attention for row in rows] == [False, True, False]
    assert rows[1].attention == ((mole, ("suspicious", "changed")),)
    assert [p.reference for p in records.clinic_patients(clinic, "rn-2")] == ["MRN-2"]
    assert empty.pk not in [row.patient.pk for row in rows if row.needs_attention]


def test_the_list_rows_cost_the_same_queries_for_one_patient_or_many(owner, clinic, django_assert_num_queries):
    def rows():
        return records.patient_rows(list(records.clinic_patients(clinic)))

    patient = make_patient(clinic)
    make_visit(owner, make_lesion(patient), day(0))
    with django_assert_num_queries(3):  # the patients, their lesions, the lesions' images with their readings
        rows()
    for n in range(5):
        lesion = make_lesion(make_patient(clinic))
        make_visit(owner, lesion, day(n))
        make_visit(owner, lesion, day(n + 30))
    with django_assert_num_queries(3):
        assert len(rows()) == 6


def test_pins_carry_each_lesions_latest_state_and_position(owner, clinic):
    patient = make_patient(clinic)
    placed = make_lesion(patient, label="L1", site="chest", side="left", map_view="front", map_x=0.55, map_y=0.3)
    unplaced = make_lesion(patient, label="L2", site="unknown")
    make_visit(owner, placed, day(0), score=0.9)
    make_visit(owner, unplaced, day(0), score=None)

    drawn = records.body_map(records.patient_lesions(patient))

    front = next(view for view in drawn.views if view.figure.view == "front")
    assert [(p.pin.label, p.pin.state, p.pin.url) for p in front.pins] == [
        ("L1", "suspicious", f"/lesions/{placed.pk}/")
    ]
    assert [(pin.label, pin.state) for pin in drawn.unplaced] == [("L2", "pending")]


def test_the_comparison_defaults_to_the_last_two_visits_and_takes_any_two(owner, lesion):
    grid = [[0.1, 0.9], [0.3, 0.5]]
    first = make_visit(owner, lesion, day(0), explanation={"method": "layer-cam", "grid": grid, "box": [0, 0, 1, 1]})
    second = make_visit(owner, lesion, day(30))
    third = make_visit(owner, lesion, day(60))
    record = records.lesion_record(lesion)

    default = records.comparison(record)
    chosen = records.comparison(record, str(third.pk), str(first.pk))
    strange = records.comparison(record, "999999", "not a number")

    assert (default.before.image, default.after.image) == (second, third)
    assert (chosen.before.image, chosen.after.image) == (first, third)  # the earlier first, whatever the order
    assert chosen.pictures[0]["explanation"]["grid"] == grid and chosen.pictures[1]["explanation"] is None
    assert chosen.pictures[0]["image_url"] == f"/images/{first.pk}/file/"
    assert (strange.before.image, strange.after.image) == (second, third)
    assert records.comparison(records.lesion_record(make_lesion(lesion.patient))) is None


def test_the_chart_is_the_lesions_scores_in_svg(owner, lesion):
    make_visit(owner, lesion, day(0), score=0.2)
    make_visit(owner, lesion, day(30), score=0.6)

    svg = records.score_chart_svg(records.lesion_record(lesion))

    assert svg.startswith("<svg") and "L1, left scapula" in svg
    assert "Latest score 0.60" in svg and "2 pictures" in svg
