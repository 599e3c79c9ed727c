"""The seven HAM10000 diagnosis classes, in the order every model outputs them."""

from __future__ import annotations

# Alphabetical, as HAM10000's `dx` codes sort: the output order of every model
# this project trains. A model card repeats it, and the card is what servers trust.
CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

FULL_NAMES: dict[str, str] = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesion",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevus",
    "vasc": "Vascular lesion",
}

# Malignant or pre-malignant: the malignancy score (training.malignancy) reads these.
MALIGNANT_CLASSES: frozenset[str] = frozenset({"akiec", "bcc", "mel"})
