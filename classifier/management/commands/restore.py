from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classifier.backup_archive import BackupInvalid, is_encrypted
from classifier.management.commands.backup import passphrase_from_env_or_prompt
from classifier.restore import RestoreRefused, restore_backup, verify_backup


class Command(BaseCommand):
    help = (
        "Restore an archive written by `manage.py backup` into an EMPTY installation (migrated, no rows, no "
        "stored files): every file is checked against the manifest first, then everything is restored in one "
        "transaction, or nothing is. An encrypted archive's passphrase comes from BACKUP_PASSPHRASE or is asked."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--verify-only", action="store_true", help="Only check the archive against its manifest; change nothing."
        )

    def handle(self, *args, file: Path, verify_only: bool, **options):
        if not file.is_file():
            raise CommandError(f"{file} is not a file.")
        passphrase = passphrase_from_env_or_prompt(confirm=False) if is_encrypted(file) else None
        try:
            if verify_only:
                manifest = verify_backup(file, passphrase)
                self.stdout.write(
                    f"{file} is whole: {len(manifest['members'])} files match their SHA-256, "
                    f"made {manifest['created_at']}."
                )
                return
            restored = restore_backup(file, passphrase)
        except BackupInvalid as error:
            raise CommandError(f"{file} cannot be restored: {error}. Nothing was restored.") from None
        except RestoreRefused as error:
            raise CommandError(f"{error} Nothing was restored.") from None
        self.stdout.write(
            f"Restored {file}: {sum(restored.rows.values())} rows, {restored.media_files} stored files, "
            f"{restored.trained_model_files} files of site-trained versions. "
            "Everyone signs in again (sessions are not in backups)."
        )
