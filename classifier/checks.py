"""System checks: configuration problems reported at start-up with stable ids."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Warning, register

from training.card import CARD_FILENAME, MODEL_FILENAME, CardError, read_card


@register()
def check_model_root(app_configs=None, **kwargs) -> list:
    root = Path(settings.MODEL_ROOT)
    if not root.is_dir():
        return [
            Warning(
                f"MODEL_ROOT {root} does not exist.",
                hint="Set MODEL_ROOT to the folder holding <version>/model.keras and card.json. "
                "Uploads will be accepted but their predictions fail with 'no active model'.",
                id="classifier.W001",
            )
        ]
    problems = []
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
    if usable == 0 and not problems:
        problems.append(
            Warning(
                f"MODEL_ROOT {root} holds no model version.",
                hint="Train one (see README) or point MODEL_ROOT at one. Predictions fail until then.",
                id="classifier.W002",
            )
        )
    return problems


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
