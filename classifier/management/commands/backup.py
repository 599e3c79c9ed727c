from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classifier.backups import write_backup

MIN_PASSPHRASE_LENGTH = 12  # the password policy's minimum (settings.AUTH_PASSWORD_VALIDATORS)


def passphrase_from_env_or_prompt(confirm: bool) -> str:
    """BACKUP_PASSPHRASE, else asked at the terminal (twice when ``confirm``); CommandError without either."""
    # Read here, when the command runs, not as a setting: a secret kept out of settings (and
    # so out of error pages and `diffsettings`) and needed only by this command.
    passphrase = os.environ.get("BACKUP_PASSPHRASE", "")
    if passphrase:
        return passphrase
    if not sys.stdin.isatty():
        raise CommandError("A passphrase is needed: set BACKUP_PASSPHRASE, or run the command at a terminal.")
    passphrase = getpass.getpass("Backup passphrase: ")
    if confirm and getpass.getpass("The same passphrase again: ") != passphrase:
        raise CommandError("The two passphrases differ: nothing was written.")
    return passphrase


class Command(BaseCommand):
    help = (
        "Write one archive of the database (every row, read in one transaction), the stored pictures and "
        "thumbnails (the default storage) and the site-trained model versions (TRAINED_MODEL_ROOT), with a "
        "manifest of versions, counts and each file's SHA-256. --encrypt seals it with a passphrase "
        "(BACKUP_PASSPHRASE, or asked). Restore it with `manage.py restore`."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The archive to write: a new file (never overwritten).")
        parser.add_argument(
            "--encrypt", action="store_true", help="Encrypt with a passphrase (AES-256-GCM, the key from scrypt)."
        )

    def handle(self, *args, file: Path, encrypt: bool, **options):
        passphrase = None
        if encrypt:
            passphrase = passphrase_from_env_or_prompt(confirm=True)
            if len(passphrase) < MIN_PASSPHRASE_LENGTH:
                raise CommandError(f"The passphrase must have at least {MIN_PASSPHRASE_LENGTH} characters.")
        if file.exists():
            raise CommandError(f"{file} already exists: give a new file name (a backup never overwrites one).")
        if not file.parent.is_dir():
            raise CommandError(f"{file.parent} is not a folder: create it, or give another path.")
        try:
            manifest = write_backup(file, passphrase)
        except FileExistsError as error:
            raise CommandError(str(error)) from None
        rows = sum(manifest["database"]["rows"].values())
        self.stdout.write(
            f"Wrote {file}{' (encrypted)' if encrypt else ''}: {rows} rows, "
            f"{manifest['media']['files']} stored files ({manifest['media']['bytes']} bytes), "
            f"{manifest['trained_models']['files']} files of site-trained versions."
        )
        if manifest["missing_files"]:
            self.stderr.write(
                f"{len(manifest['missing_files'])} files that rows name were not found in the storage "
                f"(deleted during the backup, or lost before it): {', '.join(manifest['missing_files'][:5])}"
            )
        if not encrypt:
            self.stderr.write("It is not encrypted: keep it where only you can read it, or use --encrypt.")
