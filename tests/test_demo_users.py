"""`create_demo_users`: the demo accounts in a demo clinic, and a demo patient with a followed lesion."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.http import HttpRequest
from django.utils import timezone

from classifier.management.commands.create_demo_users import DEMO_ACCOUNTS, DEMO_CLINIC, login_box
from classifier.models import LesionImage, Membership, Patient, Prediction

pytestmark = pytest.mark.django_db


def test_it_makes_a_clinic_with_a_clinician_and_a_manager_and_a_followed_lesion(capsys):
    call_command("create_demo_users")

    roles = dict(Membership.objects.filter(clinic__name=DEMO_CLINIC).values_list("user__username", "role"))
    assert roles == {"clinician": "clinician", "manager": "manager", "admin": "clinician"}
    for account in DEMO_ACCOUNTS:
        user = authenticate(HttpRequest(), username=account.username, password=account.password)
        assert user is not None and user.is_staff == account.is_staff
    patient = Patient.objects.get(clinic__name=DEMO_CLINIC)
    lesion = patient.lesions.get()
    images = list(lesion.timeline())
    assert len(images) == 3
    ages = [(timezone.now() - image.taken_at).days for image in images]
    assert ages[0] > 300 and 150 < ages[1] < 210 and ages[2] <= 1  # months apart, by their EXIF dates
    assert all(image.owner.username == "clinician" for image in images)
    assert set(Prediction.objects.values_list("status", flat=True)) == {"queued"}  # as any upload
    assert "3 pictures of its lesion queued" in capsys.readouterr().out


def test_running_it_again_resets_passwords_and_uploads_nothing_twice():
    call_command("create_demo_users")
    clinician = Membership.objects.get(user__username="clinician").user
    clinician.set_password("changed")
    clinician.save()

    call_command("create_demo_users")

    # axes needs the request to judge an attempt
    assert authenticate(HttpRequest(), username="clinician", password="lesionsite-clinician") is not None
    assert LesionImage.objects.count() == 3 and Patient.objects.count() == 1


def test_the_login_box_shows_every_demo_account():
    box = login_box("http://127.0.0.1:8000/")

    for account in DEMO_ACCOUNTS:
        assert f"{account.role:<10} username {account.username:<10} password {account.password}" in box
    assert "DEMO-001" in box
    assert "The manager and the admin set up two-factor sign-in" in box  # they must; the clinician need not
