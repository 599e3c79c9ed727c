from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from classifier.audit import Action
from classifier.history import DEFAULT_SORT, SORTS
from classifier.lib import bodymap
from classifier.lib.imaging import ACCEPTED_IN_WORDS
from classifier.models import (
    CLASS_CHOICES,
    METHOD_CHOICES,
    SEX_CHOICES,
    SITE_CHOICES,
    Lesion,
    LesionImage,
    Membership,
    Patient,
    Prediction,
)
from classifier.patients import clean_reference
from classifier.tokens import NAME_MAX_LENGTH
from classifier.uploads import taken_on
from classifier.vocabulary import Side, SkinType

# The clinician's note: long enough for a short clinical summary, short enough to
# stay a note (the model field says the same).
NOTE_MAX_LENGTH = LesionImage._meta.get_field("clinician_note").max_length
# A file's name is stored with the picture and shown wherever the picture is listed.
NAME_WARNING = "Do not name files after patients: file names are stored and shown with the pictures."


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
        label="Dermatoscopic images", help_text=f"{ACCEPTED_IN_WORDS}; one or many at once. {NAME_WARNING}"
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


# --- The patient and lesion pages.


class PatientForm(forms.ModelForm):
    """A patient's details: the clinic's reference (unique in it) and what reading a lesion needs. No name."""

    class Meta:
        model = Patient
        fields = ["reference", "year_of_birth", "sex", "skin_type", "note"]
        labels = {"skin_type": "Skin type (Fitzpatrick)"}
        help_texts = {
            "reference": "The clinic's own reference (e.g. the record number), 1-64 characters. Store no names.",
            "year_of_birth": "The year only, not the date.",
            "note": "Clinical context; keep names and other identifying details out of it.",
        }
        widgets = {"note": forms.Textarea(attrs={"rows": 3})}
        error_messages = {"reference": {"required": "Give the patient a reference (e.g. their record number)."}}

    def __init__(self, *args, clinic=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        self.fields["sex"].choices = [("", "— not entered —"), *SEX_CHOICES]
        self.fields["skin_type"].choices = [("", "— not entered —"), *SkinType.choices]

    def clean_reference(self) -> str:
        reference = clean_reference(self.cleaned_data.get("reference", ""))
        others = Patient.objects.in_clinic(self.clinic).filter(reference=reference)
        if self.instance.pk is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError(f"The clinic already has a patient with the reference {reference!r}.",
                                        code="unique")  # fmt: skip
        return reference


class LesionPlaceForm(forms.ModelForm):
    """Where a lesion is: its site and side, and a point on the body map (static/bodymap.js fills the hidden
    view, x and y from a click; without one the server draws it at the site's default point)."""

    class Meta:
        model = Lesion
        fields = ["label", "site", "side", "map_view", "map_x", "map_y"]
        labels = {"label": "Label", "site": "Body site", "side": "Side"}
        help_texts = {"label": 'A short name the clinic uses, e.g. "L3, left scapula".'}
        widgets = {"map_view": forms.HiddenInput, "map_x": forms.HiddenInput, "map_y": forms.HiddenInput}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].choices = [("", "— choose the site —"), *SITE_CHOICES]
        self.fields["side"].choices = [("", "— not entered —"), *Side.choices]
        # The partial's script finds the fields it fills by these names (templates/classifier/_bodymap.html).
        for name in ("map_view", "map_x", "map_y", "site", "side"):
            self.fields[name].widget.attrs["data-bodymap-field"] = name.removeprefix("map_")

    def clean(self):
        cleaned = super().clean()
        site, side = cleaned.get("site"), cleaned.get("side", "")
        if site and side and side not in bodymap.valid_sides(site):
            allowed = " or ".join(bodymap.valid_sides(site))
            self.add_error("side", f"A lesion on the {site} is on the {allowed} side, not the {side}.")
        if self.errors:
            return cleaned
        position = (cleaned.get("map_view") or "", cleaned.get("map_x"), cleaned.get("map_y"))
        moved = self.instance.pk is not None and (site, side) != (self.instance.site, self.instance.side)
        if position == ("", None, None) or moved:
            # No click (no script, or the lists were used), or a new site for a known lesion: the
            # site's own point, or none when the map has no place for it ("unknown", a hand with no side).
            point = bodymap.default_point(site, side)
            position = (point.view, point.x, point.y) if point else ("", None, None)
        elif "" in position[:1] or None in position[1:]:
            self.add_error("map_view", "A body-map position needs its view (front or back) and both x and y.")
            return cleaned
        cleaned["map_view"], cleaned["map_x"], cleaned["map_y"] = position
        return cleaned


class LesionForm(LesionPlaceForm):
    """A lesion's details on its page: its place, label, status and note."""

    class Meta(LesionPlaceForm.Meta):
        fields = ["label", "site", "side", "status", "note", "map_view", "map_x", "map_y"]
        widgets = {**LesionPlaceForm.Meta.widgets, "note": forms.Textarea(attrs={"rows": 3})}


class LesionLabelForm(forms.Form):
    """Admins: the lesion's confirmed diagnosis and how it was confirmed; it labels every image of the lesion."""

    diagnosis = forms.ChoiceField(label="Confirmed diagnosis", choices=[("", "— choose —"), *CLASS_CHOICES])
    method = forms.ChoiceField(label="Confirmed by", choices=[("", "— choose —"), *METHOD_CHOICES])
    note = forms.CharField(label="Note on the diagnosis", required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "label-%s")  # beside the lesion's own form, whose note is id_note
        super().__init__(*args, **kwargs)


class VisitUploadForm(forms.Form):
    """The pictures of one visit of a lesion, from its row on the patient page or from the lesion page."""

    files = MultipleImageField(
        label="Pictures of a visit", help_text=f"{ACCEPTED_IN_WORDS}; one or many. {NAME_WARNING}"
    )
    taken_at = UploadForm.base_fields["taken_at"]
    clean_taken_at = UploadForm.clean_taken_at


class EraseForm(forms.Form):
    """Erasing is final: the manager types the patient's reference to say they mean this patient."""

    confirm_reference = forms.CharField(label="Type the patient's reference to confirm", max_length=64)

    def __init__(self, *args, patient=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient

    def clean_confirm_reference(self) -> str:
        typed = self.cleaned_data["confirm_reference"].strip()
        if typed != self.patient.reference:
            raise forms.ValidationError("That is not this patient's reference: nothing was erased.", code="mismatch")
        return typed


class ApiTokenForm(forms.Form):
    """The account page's "new token": only a name, so that its list tells the user's devices apart."""

    name = forms.CharField(
        label="What it is for",
        max_length=NAME_MAX_LENGTH,
        required=False,
        help_text="A device or script, e.g. the clinic's scanner PC.",
    )
