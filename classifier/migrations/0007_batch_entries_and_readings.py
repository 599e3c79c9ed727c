
import django.db.models.deletion
from django.db import migrations, models


def list_existing_batches(apps, schema_editor):
    """Every image uploaded in a batch becomes an entry of it, with its first prediction: what the batch showed."""
    BatchEntry = apps.get_model("classifier", "BatchEntry")
    LesionImage = apps.get_model("classifier", "LesionImage")
    Prediction = apps.get_model("classifier", "Prediction")
    entries, positions = [], {}
    for image in LesionImage.objects.exclude(batch=None).order_by("batch_id", "id").iterator():
        prediction = Prediction.objects.filter(image=image).order_by("created_at", "id").first()
        if prediction is None:
            continue
        position = positions.get(image.batch_id, 0)
        positions[image.batch_id] = position + 1
        entries.append(BatchEntry(batch_id=image.batch_id, image=image, prediction=prediction, position=position))
    BatchEntry.objects.bulk_create(entries, batch_size=500)


def no_flag_without_a_reading(apps, schema_editor):
    """An out-of-distribution picture has no reading, hence no malignancy flag; record the thresholds used."""
    Prediction = apps.get_model("classifier", "Prediction")
    Prediction.objects.filter(is_out_of_distribution=True).update(is_malignant=None)
    ModelVersion = apps.get_model("classifier", "ModelVersion")
    for version in ModelVersion.objects.all():
        Prediction.objects.filter(model_version=version, status="done").update(
            malignant_threshold=version.malignant_threshold
        )


class Migration(migrations.Migration):

    dependencies = [
        ('classifier', '0006_gate_and_activations'),
    ]

    operations = [
        migrations.AddField(
            model_name='prediction',
            name='malignant_threshold',
            field=models.FloatField(blank=True, help_text="The threshold the malignancy flag was judged by (the version's, then).", null=True),
        ),
        migrations.AlterField(
            model_name='prediction',
            name='is_malignant',
            field=models.BooleanField(blank=True, help_text='Malignancy score at or above malignant_threshold; null without a reading (out of distribution).', null=True),
        ),
        migrations.CreateModel(
            name='BatchEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('already_uploaded', models.BooleanField(default=False, help_text='The clinician had uploaded these exact bytes before this batch.')),
                ('position', models.PositiveIntegerField(help_text='Order of the file in the upload.')),
                ('batch', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='entries', to='classifier.uploadbatch')),
                ('image', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batch_entries', to='classifier.lesionimage')),
                ('prediction', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batch_entries', to='classifier.prediction')),
            ],
            options={
                'verbose_name_plural': 'batch entries',
                'ordering': ['batch', 'position'],
                'constraints': [models.UniqueConstraint(fields=('batch', 'image'), name='one_entry_per_image_and_batch')],
            },
        ),
        migrations.RunPython(list_existing_batches, migrations.RunPython.noop),
        migrations.RunPython(no_flag_without_a_reading, migrations.RunPython.noop),
    ]
