"""Rows made directly, for tests that read rather than upload."""

from __future__ import annotations

from django.core.files.base import ContentFile

from classifier.models import LesionImage, Prediction
from tests.images import image_bytes

_counter = {"n": 0}


def make_image(owner, **fields) -> LesionImage:
    _counter["n"] += 1
    sha = f"{_counter['n']:064x}"
    image = LesionImage(owner=owner, sha256=sha, source_format="PNG", width=64, height=48, **fields)
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
    return Prediction.objects.create(image=image, status=status, top_class=top_class, **fields)
