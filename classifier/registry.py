"""Registering the model versions found on disk under MODEL_ROOT."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction

from classifier.models import ModelVersion
from training.card import CardError, ModelCard, find_version_dirs, read_card

logger = logging.getLogger(__name__)


def _newest_first(cards: list[tuple[Path, ModelCard]]) -> list[tuple[Path, ModelCard]]:
    # The card's creation date decides; the folder name breaks ties.
    return sorted(cards, key=lambda item: (str(item[1].raw.get("created", "")), item[0].name), reverse=True)


@transaction.atomic
def register_model_versions(model_root: Path | str | None = None) -> list[ModelVersion]:
    """Create a ModelVersion for each valid version folder not yet known; refresh known ones' cards.

    A folder whose card is invalid is skipped with a warning (the system check
    reports it too). If no version is active afterwards, the newest is activated.
    Returns the versions created.
    """
    root = Path(model_root or settings.MODEL_ROOT)
    cards = []
    for version_dir in find_version_dirs(root):
        try:
            cards.append((version_dir, read_card(version_dir)))
        except CardError as exc:
            logger.warning("Skipping model folder %s: %s", version_dir, exc)

    known = {version.name: version for version in ModelVersion.objects.all()}
    for version_dir, card in cards:
        version = known.get(card.version)
        # A card on disk may gain entries after registration (training.fit_ood adds
        # the out-of-distribution check); the database's copy follows it.
        if version is not None and version.directory == version_dir.name and version.card != card.raw:
            version.card, version.malignant_threshold = card.raw, card.malignant_threshold
            version.save(update_fields=["card", "malignant_threshold"])
            logger.info("Updated the card of model version %s from %s", card.version, version_dir)
    created = [
        ModelVersion.objects.create(
            name=card.version,
            directory=version_dir.name,
            card=card.raw,
            malignant_threshold=card.malignant_threshold,
        )
        for version_dir, card in cards
        if card.version not in known
    ]
    if not ModelVersion.objects.filter(is_active=True).exists() and cards:
        newest_dir, newest_card = _newest_first(cards)[0]
        ModelVersion.objects.get(name=newest_card.version).activate()
        logger.info("Activated model version %s", newest_card.version)
    return created


def register_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate hook: register what MODEL_ROOT holds once the tables exist."""
    if using != "default":
        return
    for version in register_model_versions():
        logger.info("Registered model version %s from %s", version.name, version.directory)
