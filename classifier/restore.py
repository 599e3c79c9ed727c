"""Restoring a backup (classifier.backups) into an empty installation, all or nothing.

First the whole archive is read and every member checked against the manifest's SHA-256
(a damaged, cut-short or wrongly decrypted archive is refused before anything changes).
Then the installation must be empty and at the backup's migrations. Then, in one
transaction, the rows are loaded with their ids, the files written, each member hashed
again, the foreign keys checked and PostgreSQL's sequences moved past the restored ids;
if anything fails, the transaction rolls back and the files written so far are removed.

"Empty": migrated, with no rows but those migrate makes itself (content types,
permissions, and the shipped model versions it registers, which the backup's rows
replace), and no stored files.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core import serializers
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.management.color import no_style
from django.core.serializers.base import DeserializationError
from django.db import DatabaseError, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from classifier.backup_archive import (
    DATABASE,
    MANIFEST,
    MEDIA,
    TRAINED_MODELS,
    BackupInvalid,
    backed_up_models,
    open_members,
    read_manifest,
)
from classifier.backups import _applied_migrations
from classifier.models import ModelActivation, ModelVersion
from classifier.private_files import PRIVATE_DIRECTORY_MODE, PRIVATE_FILE_MODE

# Rows a fresh migrate makes (classifier.registry registers the shipped versions): replaced by the backup's.
REPLACED_ON_RESTORE = (ModelActivation, ModelVersion)
READ_SIZE = 1024 * 1024


class RestoreRefused(Exception):
    """This installation cannot take the backup as it is (not empty, other migrations)."""


@dataclass(frozen=True)
class Restored:
    rows: dict[str, int]
    media_files: int
    trained_model_files: int


def verify_backup(path: Path, passphrase: str | None = None) -> dict:
    """Read the whole archive and check every member against the manifest; return the manifest."""
    found: dict[str, tuple[int, str]] = {}
    manifest_data = None
    with open_members(path, passphrase) as members:
        for name, reader in members:
            if name == MANIFEST:
                manifest_data = reader.read()
                continue
            while reader.read(READ_SIZE):
                pass
            found[name] = (reader.size, reader.sha256)
    if manifest_data is None:
        raise BackupInvalid("it has no manifest: it is incomplete (was the backup interrupted?)")
    manifest = read_manifest(manifest_data)
    listed = {member["path"]: (member["size"], member["sha256"]) for member in manifest.get("members", [])}
    if absent := sorted(set(listed) - set(found)):
        raise BackupInvalid(f"{absent[0]} is in the manifest but not in the archive ({len(absent)} files missing)")
    if unlisted := sorted(set(found) - set(listed)):
        raise BackupInvalid(f"{unlisted[0]} is in the archive but not in the manifest")
    for name, (size, digest) in found.items():
        if (size, digest) != listed[name]:
            raise BackupInvalid(f"{name} does not match the size and SHA-256 the manifest recorded: it is damaged")
    return manifest


def require_empty_installation(manifest: dict, using: str = "default") -> None:
    """RestoreRefused unless this installation is migrated as the backup was and holds nothing."""
    connection = connections[using]
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise RestoreRefused("This database has unapplied migrations: run `python manage.py migrate` first.")
    here = _applied_migrations(using)
    theirs = manifest["database"]["migrations"]
    if here != theirs:
        missing, extra = _only_in(theirs, here), _only_in(here, theirs)
        raise RestoreRefused(
            "The backup was made by a lesionsite at other migrations"
            + (f"; it has {', '.join(missing)}, which this installation lacks" if missing else "")
            + (f"; this installation has {', '.join(extra)}, which the backup lacks" if extra else "")
            + ". Restore it with the lesionsite version that made it, then upgrade (migrate)."
        )
    held = {
        model._meta.label_lower: count
        for model in backed_up_models()
        if model not in REPLACED_ON_RESTORE and (count := model._base_manager.using(using).count())
    }
    if held:
        rows = ", ".join(f"{label}: {count}" for label, count in sorted(held.items()))
        raise RestoreRefused(
            f"This database already holds rows ({rows}). A backup is restored only into an empty installation: "
            "a new database, migrated, with no users (create none before restoring: the backup has its own)."
        )
    for where, names in (("MEDIA_ROOT (the default storage)", _storage_has_files()),
                         ("TRAINED_MODEL_ROOT", _trained_root_has_files())):  # fmt: skip
        if names:
            raise RestoreRefused(f"{where} already holds files: restore only into an empty installation.")


def _only_in(these: dict[str, list[str]], those: dict[str, list[str]]) -> list[str]:
    return sorted(f"{app}.{name}" for app, names in these.items() for name in names if name not in those.get(app, []))


def _storage_has_files(path: str = "") -> bool:
    try:
        folders, files = default_storage.listdir(path)
    except FileNotFoundError:
        return False
    return bool(files) or any(_storage_has_files(f"{path}/{folder}" if path else folder) for folder in folders)


def _trained_root_has_files() -> bool:
    root = Path(settings.TRAINED_MODEL_ROOT)
    return root.is_dir() and any(path.is_file() for path in root.rglob("*"))


def restore_backup(path: Path, passphrase: str | None = None, using: str = "default") -> Restored:
    """Check the archive, check the installation is empty, then restore it all or not at all."""
    manifest = verify_backup(path, passphrase)
    require_empty_installation(manifest, using)
    listed = {member["path"]: (member["size"], member["sha256"]) for member in manifest["members"]}
    written: list = []  # how to remove each file written so far
    rows: dict[str, int] = {}
    try:
        with transaction.atomic(using=using):
            for model in REPLACED_ON_RESTORE:
                model._base_manager.using(using).all().delete()
            with open_members(path, passphrase) as members:
                for name, reader in members:
                    if name.startswith(DATABASE):
                        _load_rows(gzip.decompress(reader.read()), rows, using)
                    elif name.startswith(MEDIA):
                        written.append(_write_media(name.removeprefix(MEDIA), reader))
                    elif name.startswith(TRAINED_MODELS):
                        written.append(_write_trained(name.removeprefix(TRAINED_MODELS), reader))
                    else:
                        reader.read()
                    if name != MANIFEST and (reader.size, reader.sha256) != listed.get(name):
                        raise BackupInvalid(f"{name} changed since the archive was checked")
            expected = manifest["database"]["rows"]
            if {label: count for label, count in rows.items() if count} != {k: v for k, v in expected.items() if v}:
                raise BackupInvalid("the rows restored are not the rows the manifest counted")
            _finish_database(using)
    except BaseException:
        for remove in written:
            remove()
        raise
    return Restored(
        rows=rows, media_files=manifest["media"]["files"], trained_model_files=manifest["trained_models"]["files"]
    )


def _load_rows(data: bytes, rows: dict[str, int], using: str) -> None:
    try:
        for obj in serializers.deserialize("json", data, using=using):
            obj.save(using=using)
            label = obj.object._meta.label_lower
            rows[label] = rows.get(label, 0) + 1
    except (DeserializationError, DatabaseError) as error:
        raise BackupInvalid(f"its rows do not load into this database ({error})") from None


def _finish_database(using: str) -> None:
    connection = connections[using]
    models = backed_up_models()
    try:
        connection.check_constraints(table_names=[model._meta.db_table for model in models])
    except DatabaseError as error:
        raise BackupInvalid(f"its rows break this database's constraints ({error})") from None
    # New rows must get ids after the restored ones (PostgreSQL's sequences; SQLite follows the table).
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(statement)


def _write_media(name: str, reader):
    saved = default_storage.save(name, File(reader, name=name))
    if saved != name:
        default_storage.delete(saved)
        raise RestoreRefused(f"The storage already holds {name}: restore only into an empty installation.")
    return lambda: default_storage.delete(saved)


def _write_trained(name: str, reader):
    root = Path(settings.TRAINED_MODEL_ROOT)
    target = root / name
    for folder in reversed([*target.relative_to(root).parents][:-1]):
        (root / folder).mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "wb") as out:
        while data := reader.read(READ_SIZE):
            out.write(data)
    return lambda: target.unlink(missing_ok=True)
