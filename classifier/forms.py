from __future__ import annotations

from django import forms

from classifier.models import CLASS_CHOICES, SEX_CHOICES, SITE_CHOICES, Prediction


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """A file field that takes one or many files; each is checked by classifier.imaging."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*", "multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data]
        files = [f for f in files if f]
        if not files:
            raise forms.ValidationError("Choose at least one image.", code="required")
        return files


class UploadForm(forms.Form):
    files = MultipleImageField(
        label="Dermatoscopic images", help_text="JPEG, PNG, WebP, TIFF or BMP; one or many at once."
    )
    age = forms.IntegerField(label="Patient age", required=False, min_value=0, max_value=120)
    sex = forms.ChoiceField(label="Sex", required=False, choices=[("", "—"), *SEX_CHOICES])
    site = forms.ChoiceField(label="Anatomical site", required=False, choices=[("", "—"), *SITE_CHOICES])


class HistoryFilterForm(forms.Form):
    top_class = forms.ChoiceField(label="Predicted class", required=False, choices=[("", "Any"), *CLASS_CHOICES])
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any"), *Prediction.Status.choices])
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
