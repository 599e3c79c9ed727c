from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from classifier.model_store import PublishError, is_stored, publish_version
from classifier.models import ModelVersion
from training.card import MODEL_FILENAME


class Command(BaseCommand):
    help = (
        "Put the site-trained versions found in this host's TRAINED_MODEL_ROOT in the object store, with each "
        "file's SHA-256 in their card, so that workers on other hosts can fetch them. Run it once on the "
        "training host when a site moves to STORAGE_URL; later versions are put there by the trainer."
    )

    def handle(self, *args, **options):
        if not settings.MODEL_VERSIONS_IN_STORE:
            raise CommandError("There is no object store to put them in: set STORAGE_URL (MODEL_VERSIONS_IN_STORE).")
        for version in ModelVersion.objects.filter(root=ModelVersion.Root.TRAINED).order_by("registered_at"):
            folder = version.folder
            if is_stored(version.directory):
                self.stdout.write(f"{version.name}: already in the store")
            elif not (folder / MODEL_FILENAME).is_file():
                self.stdout.write(f"{version.name}: not on this host ({folder}); run this where it was trained")
            else:
                try:
                    card = publish_version(folder)
                except PublishError as exc:
                    raise CommandError(f"{version.name}: {exc}") from exc
                # The card now lists its files; the registered copy is what workers check downloads against.
                version.card = card
                version.save(update_fields=["card"])
                count = len(card["files"])
                self.stdout.write(
                    f"{version.name}: put in the store ({count} file{'s' if count != 1 else ''} and its card)"
                )
