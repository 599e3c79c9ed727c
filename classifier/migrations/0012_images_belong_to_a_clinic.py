"""Once 0011 has filled them: every image and batch has a clinic, and a picture is stored once per clinic."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("classifier", "0011_personal_clinics"),
    ]

    operations = [
        migrations.AlterField(
            model_name="lesionimage",
            name="clinic",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="images", to="classifier.clinic"
            ),
        ),
        migrations.AlterField(
            model_name="uploadbatch",
            name="clinic",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="batches", to="classifier.clinic"
            ),
        ),
        # Each user's (owner, sha256) pairs are now (their clinic, sha256): no duplicates to resolve.
        migrations.RemoveConstraint(
            model_name="lesionimage",
            name="one_image_per_owner_and_content",
        ),
        migrations.AddConstraint(
            model_name="lesionimage",
            constraint=models.UniqueConstraint(fields=("clinic", "sha256"), name="one_image_per_clinic_and_content"),
        ),
    ]
