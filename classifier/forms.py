from __future__ import annotations

from django import forms

from classifier.history import DEFAULT_SORT, SORTS
from classifier.models import CLASS_CHOICES, SEX_CHOICES, SITE_CHOICES, LesionImage, Prediction

# The clinician's note: long enough for a short clinical summary, short enough to
# stay a note (the model field says the same).
NOTE_MAX_LENGTH = LesionImage._meta.get_field("clinician_note").max_length


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """A file field that takes one or many files; each is checked by classifier.lib.imaging."""

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
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        help_text="File name or your note",
        widget=forms.TextInput(attrs={"type": "search"}),
    )
    top_class = forms.ChoiceField(label="Predicted class", required=False, choices=[("", "Any"), *CLASS_CHOICES])
    malignant = forms.ChoiceField(
        label="Malignancy flag",
        required=False,
        choices=[("", "Any"), ("yes", "Flagged"), ("no", "Not flagged")],
    )
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any"), *Prediction.Status.choices])
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    sort = forms.ChoiceField(
        label="Sort",
        required=False,
        initial=DEFAULT_SORT,
        choices=[(key, label) for key, (label, _) in SORTS.items()],
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned


class ClinicianNoteForm(forms.ModelForm):
    class Meta:
        model = LesionImage
        fields = ["clinician_note"]
        labels = {"clinician_note": "Your note"}
        help_texts = {
            "clinician_note": f"For your own records, apart from any confirmed diagnosis. "
            f"Up to {NOTE_MAX_LENGTH} characters; your history searches it."
        }
        widgets = {"clinician_note": forms.Textarea(attrs={"rows": 6})}
        error_messages = {
            "clinician_note": {
                "max_length": "The note is too long: keep it to %(limit_value)d characters (it has %(show_value)d)."
            }
        }
