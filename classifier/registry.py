"""Registering the model versions found on disk: shipped ones under MODEL_ROOT, site-trained
ones under TRAINED_MODEL_ROOT, and site-trained ones in the object store (classifier.model_store)."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction

from classifier.model_store import stored_cards
from classifier.models import ModelActivation, ModelVersion
from training.card import CardError, ModelCard, find_version_dirs, read_card

logger = logging.getLogger(__name__)


def _newest_first(cards: list[tuple[str, Path, ModelCard]]) -> list[tuple[str, Path, ModelCard]]:
    # The card's creation date decides; the folder name breaks ties.
    return sorted(cards, key=lambda item: (str(item[2].raw.get("created", "")), item[1].name), reverse=True)


def _read_cards(roots: dict[str, Path]) -> list[tuple[str, Path, ModelCard]]:
    """(root, folder, card) for each valid version folder, then each in the object store
    (settings.MODEL_VERSIONS_IN_STORE); a version name found twice keeps its first."""
    cards, seen = [], {}
    for root, path in roots.items():
        for version_dir in find_version_dirs(path):
            try:
                card = read_card(version_dir)
            except CardError as exc:
                logger.warning("Skipping model folder %s: %s", version_dir, exc)
                continue
            if card.version in seen:
                logger.warning("Skipping model folder %s: version %s is also in %s", version_dir, card.version,
                               seen[card.version])  # fmt: skip
                continue
            seen[card.version] = version_dir
            cards.append((root, version_dir, card))
    # Versions trained on another host are in the object store only; they are recorded as
    # TRAINED_MODEL_ROOT's, the folder a worker's copy would have (worker.model_fetch).
    for directory, card in stored_cards():
        if card.version not in seen:
            seen[card.version] = f"the object store's {directory}"
            cards.append((ModelVersion.Root.TRAINED.value, roots[ModelVersion.Root.TRAINED.value] / directory, card))
    return cards


@transaction.atomic
def register_model_versions(
    model_root: Path | str | None = None, trained_root: Path | str | None = None
) -> list[ModelVersion]:
    """Create a ModelVersion for each valid version folder not yet known; refresh known ones' cards.

    Looks in MODEL_ROOT and TRAINED_MODEL_ROOT (or the folders given). A folder whose
    card is invalid is skipped with a warning (the system check reports it too). A known
    version found in the other root than the one recorded (moved there) is recorded
    there. If no version is active afterwards, the newest is activated. Returns the
    versions created.
    """
    roots = {
        ModelVersion.Root.MODELS.value: Path(model_root or settings.MODEL_ROOT),
        ModelVersion.Root.TRAINED.value: Path(trained_root or settings.TRAINED_MODEL_ROOT),
    }
    cards = _read_cards(roots)

    known = {version.name: version for version in ModelVersion.objects.all()}
    for root, version_dir, card in cards:
        version = known.get(card.version)
        if version is None:
            continue
        if not version_dir.is_dir():
            # Only in the object store: the registered card stays as it is. It holds the files'
            # SHA-256 that downloads are checked against, so a card changed in the bucket (with
            # its files) must not replace it.
            continue
        recorded = roots[version.root] / version.directory
        if (root, version_dir.name) != (version.root, version.directory) and not recorded.is_dir():
            version.root, version.directory = root, version_dir.name
            version.save(update_fields=["root", "directory"])
            logger.info("Model version %s is now found in %s", card.version, version_dir)
        # A card on disk may gain entries after registration (training.fit_ood adds
        # the out-of-distribution check); the database's copy follows it.
        if (root, version_dir.name) == (version.root, version.directory) and version.card != card.raw:
            version.card = card.raw
            try:  # the chosen operating point stays chosen, at the new card's threshold for it
                version.malignant_threshold = version.threshold_for(version.target_sensitivity)
            except ValueError:
                logger.warning("Model version %s's new card has no %s operating point: back to its own threshold",
                               card.version, version.target_sensitivity)  # fmt: skip
                version.target_sensitivity, version.malignant_threshold = None, card.malignant_threshold
            version.save(update_fields=["card", "malignant_threshold", "target_sensitivity"])
            logger.info("Updated the card of model version %s from %s", card.version, version_dir)
    created = [
        ModelVersion.objects.create(
            name=card.version,
            directory=version_dir.name,
            root=root,
            card=card.raw,
            malignant_threshold=card.malignant_threshold,
        )
        for root, version_dir, card in cards
        if card.version not in known
    ]
    if not ModelVersion.objects.filter(is_active=True).exists() and cards:
        _, newest_dir, newest_card = _newest_first(cards)[0]
        ModelVersion.objects.get(name=newest_card.version).activate(
            via=ModelActivation.Via.REGISTRY, reasons=[f"No version was active: {newest_card.version} is the newest."]
        )
        logger.info("Activated model version %s", newest_card.version)
    return created


def register_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate hook: register what MODEL_ROOT and TRAINED_MODEL_ROOT hold once the tables exist."""
    if using != "default":
        return
    for version in register_model_versions():
        logger.info("Registered model version %s from %s", version.name, version.folder)
