"""System checks: configuration problems reported at start-up with stable ids."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Warning, register

from training.card import CARD_FILENAME, MODEL_FILENAME, CardError, read_card


@register()
def check_model_root(app_configs=None, **kwargs) -> list:
    """MODEL_ROOT holds the shipped versions; TRAINED_MODEL_ROOT, created by the first
    training job, those trained on this site. Every version folder in either must be usable."""
    root, trained = Path(settings.MODEL_ROOT), Path(settings.TRAINED_MODEL_ROOT)
    problems, usable = [], 0
    for folder in (root, trained):
        folder_problems, folder_usable = _check_version_folders(folder)
        problems += folder_problems
        usable += folder_usable
    if not root.is_dir() and usable == 0:
        problems.insert(
            0,
            Warning(
                f"MODEL_ROOT {root} does not exist.",
                hint="Set MODEL_ROOT to the folder holding <version>/model.keras and card.json. "
                "Uploads will be accepted but their predictions fail with 'no active model'.",
                id="classifier.W001",
            ),
        )
    elif usable == 0 and not problems:
        problems.append(
            Warning(
                f"MODEL_ROOT {root} holds no model version (nor does TRAINED_MODEL_ROOT {trained}).",
                hint="Train one (see README) or point MODEL_ROOT at one. Predictions fail until then.",
                id="classifier.W002",
            )
        )
    return problems


def _check_version_folders(root: Path) -> tuple[list, int]:
    """Errors for the unusable version folders under root, and how many are usable."""
    if not root.is_dir():
        return [], 0
    problems = []
    # A training job writes into a hidden .partial-<version> folder and renames it when complete.
    folders = [child for child in sorted(root.iterdir()) if child.is_dir() and not child.name.startswith((".", "_"))]
    usable = 0
    for folder in folders:
        if not (folder / MODEL_FILENAME).is_file():
            problems.append(
                Error(
                    f"Model folder {folder} has no {MODEL_FILENAME}.",
                    hint="Restore the model file or remove the folder.",
                    id="classifier.E001",
                )
            )
            continue
        try:
            read_card(folder)
        except CardError as exc:
            problems.append(
                Error(f"Model folder {folder} has an unusable {CARD_FILENAME}: {exc}", id="classifier.E002")
            )
            continue
        usable += 1
    return problems, usable


@register()
def check_broker(app_configs=None, **kwargs) -> list:
    if not getattr(settings, "CELERY_BROKER_URL", ""):
        return [
            Error(
                "CELERY_BROKER_URL is not set.",
                hint="Set it to the Redis that carries inference tasks, e.g. redis://127.0.0.1:6379/0.",
                id="classifier.E003",
            )
        ]
    return []


@register(deploy=True)
def check_secret_key(app_configs=None, **kwargs) -> list:
    if settings.SECRET_KEY == settings.DEV_SECRET_KEY:
        return [Error("SECRET_KEY is the development default.", hint="Set SECRET_KEY.", id="classifier.E004")]
    return []
