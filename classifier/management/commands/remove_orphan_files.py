from __future__ import annotations

from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from classifier.stored_files import orphan_files


class Command(BaseCommand):
    help = (
        "Delete stored pictures and thumbnails that no image names and that were written more than "
        "--older-than-hours ago (default 24: an upload in progress keeps its file). Deleting an image "
        "removes its files already; this catches what a crash or an older version left behind."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than-hours", type=int, default=24, help="Leave files newer than this alone.")
        parser.add_argument("--dry-run", action="store_true", help="Only list the files that would be deleted.")

    def handle(self, *args, older_than_hours: int, dry_run: bool, **options):
        if older_than_hours < 1:  # a younger file may be an upload whose row is about to be committed
            raise CommandError(f"--older-than-hours must be at least 1, not {older_than_hours}.")
        orphans = orphan_files(timezone.now() - timedelta(hours=older_than_hours))
        for name in orphans:
            self.stdout.write(f"{'would delete' if dry_run else 'deleting'} {name}")
            if not dry_run:
                default_storage.delete(name)
        self.stdout.write(
            f"{len(orphans)} orphan files older than {older_than_hours} hours"
            + (" (none deleted: --dry-run)." if dry_run else " deleted.")
        )
