from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from classifier.audit import Action
from classifier.history import DEFAULT_SORT, SORTS
from classifier.models import (
    CLASS_CHOICES,
    SEX_CHOICES,
    SITE_CHOICES,
    Lesion,
    LesionImage,
    Membership,
    Patient,
    Prediction,
)
from classifier.uploads import taken_on

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


class LesionChoiceField(forms.ModelChoiceField):
    """A lesion by its patient's reference and its label; the choices are set by the form's clinic."""

    def __init__(self, *args, with_clinic: bool = False, **kwargs):
        self.with_clinic = with_clinic
        super().__init__(Lesion.objects.none(), *args, **kwargs)

    def label_from_instance(self, lesion: Lesion) -> str:
        where = f"{lesion.patient.clinic.name} · " if self.with_clinic else ""
        return f"{where}patient {lesion.patient.reference} · {lesion}"


class UploadForm(forms.Form):
    files = MultipleImageField(
        label="Dermatoscopic images", help_text="JPEG, PNG, WebP, TIFF or BMP; one or many at once."
    )
    lesion = LesionChoiceField(label="Lesion", required=False, empty_label="— none: a one-off upload —")
    taken_at = forms.DateField(
        label="Taken on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Empty: the date the camera recorded, else today.",
    )
    age = forms.IntegerField(label="Patient age", required=False, min_value=0, max_value=120)
    sex = forms.ChoiceField(label="Sex", required=False, choices=[("", "—"), *SEX_CHOICES])
    site = forms.ChoiceField(label="Anatomical site", required=False, choices=[("", "—"), *SITE_CHOICES])

    def __init__(self, *args, clinic=None, **kwargs):
        super().__init__(*args, **kwargs)
        lesions = Lesion.objects.in_clinic(clinic).select_related("patient").order_by("patient__reference", "id")
        self.fields["lesion"].queryset = lesions

    def clean_taken_at(self):
        day = self.cleaned_data.get("taken_at")
        if day is None:
            return None
        if day > timezone.localdate():
            raise forms.ValidationError("The date is in the future.", code="future")
        return taken_on(day)


class HistoryFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        help_text="File name, note or patient reference",
        widget=forms.TextInput(attrs={"type": "search"}),
    )
    patient = forms.CharField(
        label="Patient", required=False, max_length=64, help_text="A patient's reference: only their images"
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

    def __init__(self, *args, clinic=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.clinic = clinic

    def clean_patient(self) -> Patient | None:
        reference = self.cleaned_data.get("patient", "").strip()
        if not reference:
            return None
        patient = Patient.objects.in_clinic(self.clinic).filter(reference=reference).first()
        if patient is None:
            raise forms.ValidationError("No patient of this clinic has that reference.", code="unknown_patient")
        return patient

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
        labels = {"clinician_note": "Note"}
        help_texts = {
            "clinician_note": f"For the clinic's records, apart from any confirmed diagnosis: the clinic's members "
            f"read it. Up to {NOTE_MAX_LENGTH} characters; the history searches it."
        }
        widgets = {"clinician_note": forms.Textarea(attrs={"rows": 6})}
        error_messages = {
            "clinician_note": {
                "max_length": "The note is too long: keep it to %(limit_value)d characters (it has %(show_value)d)."
            }
        }


class AttachForm(forms.Form):
    """Attach a one-off upload to a lesion of one of the user's clinics (it moves into that clinic)."""

    lesion = LesionChoiceField(label="Lesion", with_clinic=True, empty_label="— choose the lesion —")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        lesions = Lesion.objects.in_clinics_of(user).select_related("patient__clinic")
        self.fields["lesion"].queryset = lesions.order_by("patient__clinic__name", "patient__reference", "id")


class AuditFilterForm(forms.Form):
    """The audit log page's filters: who, what, when, which patient."""

    user = forms.CharField(label="User", required=False, max_length=150, help_text="A username")
    action = forms.ChoiceField(label="Action", required=False, choices=[("", "Any"), *Action.choices])
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    patient = forms.CharField(
        label="Patient",
        required=False,
        max_length=64,
        help_text="A patient's reference, or # and the number an erased patient's events keep",
    )

    def __init__(self, *args, clinic=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.clinic = clinic

    def clean_patient(self) -> int | None:
        """The patient's id: the events keep it after the patient (and their reference) is erased."""
        text = self.cleaned_data.get("patient", "").strip()
        if not text:
            return None
        if text.startswith("#") and text[1:].isdigit():
            return int(text[1:])
        patient = Patient.objects.in_clinic(self.clinic).filter(reference=text).first()
        if patient is None:
            raise forms.ValidationError("No patient of this clinic has that reference.", code="unknown_patient")
        return patient.pk

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        cleaned["patient_id"] = cleaned.pop("patient", None)
        return cleaned


class AddMemberForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150, help_text="An existing account's username")
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices, initial=Membership.Role.CLINICIAN)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(
                f"There is no active account {username!r}: an administrator creates accounts.", code="unknown_user"
            )
        return user


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices)
