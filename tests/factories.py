"""Rows made directly, for tests that read rather than upload."""

from __future__ import annotations

import io

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

from classifier.models import BatchEntry, Clinic, Lesion, LesionImage, Membership, Patient, Prediction, UploadBatch
from tests.images import image_bytes

_counter = {"n": 0}


def clinic_of(user) -> Clinic:
    """The user's current clinic; a user in none (pytest-django's admin_user) is given one of their own."""
    membership = Membership.objects.filter(user=user).order_by("-is_current", "pk").select_related("clinic").first()
    if membership is not None:
        return membership.clinic
    clinic = Clinic.objects.create(name=f"{user.get_username()}'s clinic")
    clinic.add_member(user, "manager")
    return clinic


def make_batch(owner, clinic: Clinic | None = None) -> UploadBatch:
    return UploadBatch.objects.create(owner=owner, clinic=clinic or clinic_of(owner))


def make_patient(clinic: Clinic, reference: str | None = None, **fields) -> Patient:
    _counter["n"] += 1
    return Patient.objects.create(clinic=clinic, reference=reference or f"P-{_counter['n']:04d}", **fields)


def make_lesion(patient: Patient, site: str = "back", **fields) -> Lesion:
    return Lesion.objects.create(patient=patient, site=site, **fields)


def make_image(owner, clinic: Clinic | None = None, **fields) -> LesionImage:
    """An image of ``clinic`` (default: the owner's, or its lesion's clinic), uploaded by ``owner``."""
    _counter["n"] += 1
    sha = f"{_counter['n']:064x}"
    lesion = fields.get("lesion")
    clinic = clinic or (lesion.patient.clinic if lesion is not None else clinic_of(owner))
    if lesion is not None and lesion.diagnosis:
        fields = {**lesion.label_fields, **fields}  # as an upload to a labelled lesion does
    image = LesionImage(owner=owner, clinic=clinic, sha256=sha, source_format="PNG", width=64, height=48, **fields)
    image.file.save(f"{sha}.png", ContentFile(image_bytes(seed=_counter["n"])), save=False)
    image.save()
    return image


def make_prediction(owner, status: str = "queued", top_class: str = "", **fields) -> Prediction:
    image = fields.pop("image", None) or make_image(owner)
    if status == "done" and "probabilities" not in fields:
        top = top_class or "nv"
        rest = (1.0 - 0.7) / 6
        fields["probabilities"] = {code: (0.7 if code == top else rest) for code in
                                   ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")}  # fmt: skip
        fields.setdefault("top_probability", 0.7)
        fields.setdefault("malignant_probability", sum(fields["probabilities"][c] for c in ("akiec", "bcc", "mel")))
        top_class = top
    prediction = Prediction.objects.create(image=image, status=status, top_class=top_class, **fields)
    if image.batch_id and not image.batch_entries.filter(batch_id=image.batch_id).exists():
        # As an upload does: the batch lists the file with the prediction made for it.
        position = BatchEntry.objects.filter(batch_id=image.batch_id).count()
        BatchEntry.objects.create(batch_id=image.batch_id, image=image, prediction=prediction, position=position)
    return prediction


def make_labelled_dataset(
    owner, held_out_lesions_per_class: int = 1, train_lesions_per_class: int = 7, images_per_lesion: int = 2
) -> list[LesionImage]:
    """Labelled images with every class in every part: ``held_out_lesions_per_class`` lesions of
    each class in validation and in test, ``train_lesions_per_class`` in train.

    Each class gets its own tint, so even a tiny model has something to learn.
    """
    from classifier.models import CLASS_CHOICES
    from classifier.training_data import assign_split

    # Melanoma first, so even a small dataset has melanoma in every split (the gate checks its recall).
    classes = sorted((code for code, _ in CLASS_CHOICES), key=lambda code: code != "mel")
    wanted = {"train": train_lesions_per_class, "val": held_out_lesions_per_class, "test": held_out_lesions_per_class}
    filled = {part: dict.fromkeys(classes, 0) for part in wanted}
    made = []
    n = 0
    while any(count < wanted[part] for part in wanted for count in filled[part].values()):
        lesion, n = f"TEST-{n:03d}", n + 1
        part = assign_split(f"lesion:{lesion}", {})
        dx = next((code for code in classes if filled[part][code] < wanted[part]), None)
        if dx is None:
            continue  # this lesion's part is full
        filled[part][dx] += 1
        for k in range(images_per_lesion):
            image = make_image(owner, source_lesion_id=lesion, diagnosis=dx, diagnosis_method="histo")
            tint = np.array([40 + 30 * classes.index(dx), 200 - 25 * classes.index(dx), 90], np.uint8)
            noise = np.random.default_rng(n * 10 + k).integers(0, 40, (48, 64, 3), dtype=np.uint8)
            pixels = Image.fromarray(np.clip(tint + noise, 0, 255).astype(np.uint8))
            buffer = io.BytesIO()
            pixels.save(buffer, "PNG")
            image.file.save(image.file.name.rsplit("/", 1)[-1], ContentFile(buffer.getvalue()), save=True)
            made.append(image)
    return made


def make_visit(owner, lesion: Lesion, taken_at, score: float | None = 0.2, top_class="nv", batch=None, **fields):
    """A picture of ``lesion`` taken at ``taken_at`` whose latest prediction read ``score`` (None: still queued).

    ``fields`` go to the prediction (status, lesion_outline, model_version, explanation, is_out_of_distribution, ...).
    """
    image = make_image(owner, lesion=lesion, taken_at=taken_at, batch=batch)
    if score is None:
        make_prediction(owner, image=image, status=fields.pop("status", "queued"), **fields)
    else:
        fields.setdefault("malignant_probability", score)
        fields.setdefault("is_malignant", score >= 0.5)
        fields.setdefault("malignant_threshold", 0.5)
        make_prediction(owner, image=image, status=fields.pop("status", "done"), top_class=top_class, **fields)
    image.refresh_from_db()  # its latest_prediction link, which the prediction's save set
    return image
