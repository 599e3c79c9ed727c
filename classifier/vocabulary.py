"""The words the domain's records use: classes, confirmation methods, sexes, body sites, sides.

One module for every choice set, so images, patients and lesions speak alike and the
domain's modules (models, clinics) can share them without importing each other.
"""

from __future__ import annotations

from django.db import models

from classifier.lib.bodymap import SITES
from training.classes import CLASSES, FULL_NAMES

CLASS_CHOICES = [(code, f"{FULL_NAMES[code]} ({code})") for code in CLASSES]

SEX_CHOICES = [("male", "Male"), ("female", "Female"), ("unknown", "Unknown")]

# HAM10000's `localization` vocabulary (defined with the body map that draws it), so uploads,
# lesions and the training data speak alike.
SITE_CHOICES = [(site, site.capitalize()) for site in SITES]


# How a diagnosis was confirmed; the codes are HAM10000's `dx_type`.
METHOD_CHOICES = [
    ("histo", "Histopathology"),
    ("follow_up", "Follow-up"),
    ("consensus", "Expert consensus"),
    ("confocal", "Confocal microscopy"),
]


class Side(models.TextChoices):
    """Which side of the body a lesion is on; HAM10000's sites do not say."""

    LEFT = "left", "Left"
    RIGHT = "right", "Right"
    MIDLINE = "midline", "Midline"


class SkinType(models.TextChoices):
    """The Fitzpatrick skin type: how the skin reacts to the sun, I (always burns) to VI (never burns)."""

    I = "I", "I (always burns, never tans)"  # noqa: E741  (the scale's own numeral)
    II = "II", "II (usually burns, tans minimally)"
    III = "III", "III (sometimes burns, tans gradually)"
    IV = "IV", "IV (burns minimally, tans well)"
    V = "V", "V (rarely burns, tans deeply)"
    VI = "VI", "VI (never burns)"


def validate_label(diagnosis: str, method: str) -> None:
    """A confirmed diagnosis is one of the seven classes, confirmed in one of METHOD_CHOICES' ways."""
    if diagnosis not in dict(CLASS_CHOICES):
        raise ValueError(f"unknown diagnosis {diagnosis!r}")
    if method not in dict(METHOD_CHOICES):
        raise ValueError(f"unknown confirmation method {method!r}")
