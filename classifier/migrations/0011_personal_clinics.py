"""Every existing user gets a personal clinic holding what they uploaded, so nothing is lost.

Each user becomes the manager of a clinic of their own, current for them; their images
and batches move into it. Images are taken when they were uploaded (the only date known).
Pages then show each user what they saw before: their clinic's records are their uploads.
"""

from django.conf import settings
from django.db import migrations
from django.db.models import F

CLINIC_NAME_LENGTH = 100


def personal_clinic_name(username: str, user_id: int, taken: set[str]) -> str:
    name = f"{username} (personal)"
    if len(name) > CLINIC_NAME_LENGTH or name in taken:
        name = f"{username[: CLINIC_NAME_LENGTH - 30]} (personal, user {user_id})"
    return name


def give_each_user_a_clinic(apps, schema_editor):
    User = apps.get_model(settings.AUTH_USER_MODEL)
    Clinic = apps.get_model("classifier", "Clinic")
    Membership = apps.get_model("classifier", "Membership")
    LesionImage = apps.get_model("classifier", "LesionImage")
    UploadBatch = apps.get_model("classifier", "UploadBatch")
    taken = set(Clinic.objects.values_list("name", flat=True))
    for user in User.objects.order_by("pk"):
        # Historical models have no methods: the username field by name (a custom user model may lack it).
        name = personal_clinic_name(getattr(user, "username", "") or f"user {user.pk}", user.pk, taken)
        taken.add(name)
        clinic = Clinic.objects.create(name=name)
        Membership.objects.create(user=user, clinic=clinic, role="manager", is_current=True)
        LesionImage.objects.filter(owner=user).update(clinic=clinic)
        UploadBatch.objects.filter(owner=user).update(clinic=clinic)
    LesionImage.objects.update(taken_at=F("created_at"))


class Migration(migrations.Migration):

    dependencies = [
        ("classifier", "0010_clinics_patients_lesions_audit"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Backwards, the clinics go with the tables 0010 made; nothing to undo here.
        migrations.RunPython(give_each_user_a_clinic, migrations.RunPython.noop),
    ]
