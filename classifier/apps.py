from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Lesion classifier"

    def ready(self) -> None:
        from classifier import (
            checks,  # noqa: F401  (registers the system checks)
            webhook_events,  # noqa: F401  (listens for finished predictions)
        )
        from classifier.registry import register_after_migrate

        # Versions found under MODEL_ROOT are registered on every migrate, so a
        # fresh database serves the shipped model without a manual step.
        post_migrate.connect(register_after_migrate, sender=self)
