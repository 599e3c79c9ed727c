"""The domain's rules about clinics, members, patients and lesions (no pages here)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from classifier.clinics import MembershipError
from classifier.models import Clinic, Lesion, Membership, Patient
from classifier.patients import clean_reference, validate_year_of_birth
from classifier.training_data import group_key
from tests.factories import make_image, make_lesion, make_patient

pytestmark = pytest.mark.django_db


# --- Members


def test_a_users_first_clinic_becomes_their_current_one_and_a_second_does_not(owner, clinic, other_clinic):
    second = other_clinic.add_member(owner, "clinician")

    assert Membership.objects.get(user=owner, clinic=clinic).is_current
    assert not second.is_current


def test_switching_clinics_leaves_exactly_one_current(owner, clinic, other_clinic):
    second = other_clinic.add_member(owner, "clinician")

    second.make_current()

    assert list(Membership.objects.filter(user=owner, is_current=True)) == [second]


def test_the_database_refuses_two_current_clinics(owner, other_clinic):
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=owner, clinic=other_clinic, is_current=True)


def test_a_member_is_added_once(owner, clinic):
    with pytest.raises(MembershipError, match="already a member"):
        clinic.add_member(owner, "manager")


def test_the_last_manager_can_neither_be_demoted_nor_removed(manager, clinic):
    membership = Membership.objects.get(user=manager, clinic=clinic)

    with pytest.raises(MembershipError, match="only manager"):
        membership.change_role("clinician")
    with pytest.raises(MembershipError, match="only manager"):
        membership.remove()
    assert Membership.objects.get(pk=membership.pk).role == "manager"


def test_a_manager_can_step_down_once_there_is_another(manager, owner, clinic):
    Membership.objects.get(user=owner, clinic=clinic).change_role("manager")

    Membership.objects.get(user=manager, clinic=clinic).change_role("clinician")

    assert list(clinic.memberships.managers().values_list("user__username", flat=True)) == ["alice"]


def test_an_unknown_role_is_refused(owner, clinic):
    with pytest.raises(MembershipError, match="Unknown role"):
        Membership.objects.get(user=owner, clinic=clinic).change_role("owner")


# --- Patients


def test_a_reference_is_trimmed_and_must_be_1_to_64_characters_on_one_line():
    assert clean_reference("  MRN-0042 \t") == "MRN-0042"
    assert clean_reference("x" * 64) == "x" * 64
    for bad, message in (("   ", "Give the patient a reference"), ("x" * 65, "65 characters; the limit is 64"),
                         ("A\nB", "one line")):  # fmt: skip
        with pytest.raises(ValidationError, match=message):
            clean_reference(bad)


def test_a_saved_reference_is_stored_trimmed_and_unique_in_its_clinic(clinic, other_clinic):
    Patient.objects.create(clinic=clinic, reference=" MRN-1 ")

    assert Patient.objects.get().reference == "MRN-1"
    Patient.objects.create(clinic=other_clinic, reference="MRN-1")  # another clinic's numbering
    with pytest.raises(IntegrityError), transaction.atomic():
        Patient.objects.create(clinic=clinic, reference="MRN-1")


def test_a_year_of_birth_is_not_in_the_future_nor_before_1900():
    validate_year_of_birth(timezone.localdate().year)
    validate_year_of_birth(1900)
    with pytest.raises(ValidationError, match="in the future"):
        validate_year_of_birth(timezone.localdate().year + 1)
    with pytest.raises(ValidationError, match="before 1900"):
        validate_year_of_birth(1899)


def test_patients_are_searched_by_reference_in_any_case(clinic):
    make_patient(clinic, "MRN-0042")
    make_patient(clinic, "MRN-0099")

    assert [p.reference for p in Patient.objects.in_clinic(clinic).search("mrn-00")] == ["MRN-0042", "MRN-0099"]
    assert [p.reference for p in Patient.objects.in_clinic(clinic).search("42")] == ["MRN-0042"]
    assert not Patient.objects.in_clinic(None).exists()


# --- Lesions


def test_a_body_map_position_is_a_view_and_a_point_inside_it_or_nothing(clinic):
    patient = make_patient(clinic)
    make_lesion(patient)
    make_lesion(patient, map_view="front", map_x=0.0, map_y=1.0)
    halves_and_outside = [
        {"map_view": "front", "map_x": 0.5},
        {"map_x": 0.5, "map_y": 0.5},
        {"map_view": "back", "map_x": 1.2, "map_y": 0.5},
        {"map_view": "back", "map_x": 0.5, "map_y": -0.1},
    ]
    for bad in halves_and_outside:
        with pytest.raises(IntegrityError), transaction.atomic():
            make_lesion(patient, **bad)


def test_labelling_a_lesion_labels_every_image_of_it(owner, clinic):
    lesion = make_lesion(make_patient(clinic))
    images = [make_image(owner, lesion=lesion) for _ in range(3)]
    alone = make_image(owner)

    count = lesion.set_label("mel", "histo", "excised 2026-03", owner)

    assert count == 3
    for image in images:
        image.refresh_from_db()
        assert (image.diagnosis, image.diagnosis_method, image.diagnosis_note) == ("mel", "histo", "excised 2026-03")
        assert image.labelled_by == owner and image.labelled_at == lesion.labelled_at
    alone.refresh_from_db()
    assert alone.diagnosis == ""


def test_the_lesions_timeline_is_by_the_date_taken(owner, clinic):
    lesion = make_lesion(make_patient(clinic))
    now = timezone.now()
    late = make_image(owner, lesion=lesion, taken_at=now)
    early = make_image(owner, lesion=lesion, taken_at=now - timezone.timedelta(days=400))

    assert list(lesion.timeline()) == [early, late]


def test_a_lesion_is_in_its_patients_clinic_only(owner, clinic, other_clinic):
    lesion = make_lesion(make_patient(clinic))

    assert list(Lesion.objects.in_clinic(clinic)) == [lesion]
    assert not Lesion.objects.in_clinic(other_clinic).exists()
    assert list(Lesion.objects.in_clinics_of(owner)) == [lesion]


def test_a_clinic_with_records_cannot_be_deleted_by_a_cascade(owner, clinic):
    make_image(owner)
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        clinic.delete()
    assert Clinic.objects.filter(pk=clinic.pk).exists()


# --- Splits


def test_a_clinic_lesions_pictures_share_one_split_group():
    assert group_key("", "a" * 64, 12) == group_key("", "b" * 64, 12) == "clinic-lesion:12"
    assert group_key("HAM_1", "a" * 64, 12) == "lesion:HAM_1"  # the dataset's split still places it
    assert group_key("", "c" * 64) == f"image:{'c' * 64}"
