from __future__ import annotations

from django.core.management.base import BaseCommand

from classifier.models import ModelVersion
from classifier.registry import register_model_versions


class Command(BaseCommand):
    help = (
        "Register the model versions under MODEL_ROOT (shipped) and TRAINED_MODEL_ROOT (trained on this site); "
        "activate the newest if none is active."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model-root", help="Folder of shipped <version>/ folders (default: settings.MODEL_ROOT).")
        parser.add_argument(
            "--trained-model-root",
            help="Folder of site-trained <version>/ folders (default: settings.TRAINED_MODEL_ROOT).",
        )

    def handle(self, *args, model_root=None, trained_model_root=None, **options):
        for version in register_model_versions(model_root, trained_model_root):
            self.stdout.write(f"Registered {version.name} ({version.folder})")
        active = ModelVersion.active()
        self.stdout.write(f"Active model version: {active.name if active else 'none'}")
