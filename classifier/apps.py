from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Lesion classifier"

    def ready(self) -> None:
        from classifier import (
            checks,  # noqa: F401  (registers the system checks)
            stored_files,
            webhook_events,  # noqa: F401  (listens for finished predictions)
        )
        from classifier.private_files import make_sqlite_file_private
        from classifier.registry import register_after_migrate

        # A deleted image's files go once nothing uses them (classifier.stored_files).
        stored_files.connect()
        # The SQLite database holds patients' records: the owner's alone (classifier.private_files).
        connection_created.connect(make_sqlite_file_private, dispatch_uid="private_sqlite_file")

        # Versions found under MODEL_ROOT are registered on every migrate, so a
        # fresh database serves the shipped model without a manual step.
        post_migrate.connect(register_after_migrate, sender=self)
