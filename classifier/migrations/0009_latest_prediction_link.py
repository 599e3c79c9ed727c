import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def point_at_the_newest(apps, schema_editor):
    """Every image gets its newest prediction, as LesionImageQuerySet.refresh_latest_prediction does."""
    LesionImage = apps.get_model("classifier", "LesionImage")
    Prediction = apps.get_model("classifier", "Prediction")
    newest = Prediction.objects.filter(image=OuterRef("pk")).order_by("-created_at", "-id").values("id")[:1]
    LesionImage.objects.update(latest_prediction=Subquery(newest))


class Migration(migrations.Migration):

    dependencies = [
        ('classifier', '0008_operating_point'),
    ]

    operations = [
        migrations.AddField(
            model_name='lesionimage',
            name='latest_prediction',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='classifier.prediction'),
        ),
        migrations.RunPython(point_at_the_newest, migrations.RunPython.noop),
    ]
