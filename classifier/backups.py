"""Writing a backup: the database, the stored files and the site-trained versions, in one archive.

**The database** is dumped as Django's JSON serialization of every row, read in one
transaction: at REPEATABLE READ on PostgreSQL (one snapshot, writers carry on), and on
SQLite a transaction that holds the write lock (this project's ``transaction_mode``), so
every row comes from the same moment. Not ``pg_dump``: the same archive, command and
restore work on SQLite and PostgreSQL, the web image needs no PostgreSQL client of the
server's version, and rows are restored through the models with their ids kept. The
cost: a restore needs the same migrations (the manifest records them), and every row goes
through Python, slower than pg_dump for a large database.

**Files** are copied after the snapshot, file by file. Pictures are content-addressed and
written before their row is committed, so every row of the snapshot has its file, unless
it was deleted meanwhile: the manifest lists any such file as missing.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import platform
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import django
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import FileField
from django.utils import timezone

from classifier.backup_archive import (
    CHUNK_ROWS,
    DATABASE,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MEDIA,
    TRAINED_MODELS,
    ExactJSONEncoder,
    HashingReader,
    Member,
    RowSerializer,
    backed_up_models,
)
from classifier.lib.sealed_stream import SealedWriter
from classifier.private_files import PRIVATE_FILE_MODE


@dataclass
class _Written:
    members: list[Member] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    referenced: set[str] = field(default_factory=set)  # file names the rows hold


def write_backup(out_path: Path, passphrase: str | None = None, using: str = "default") -> dict:
    """Write the archive to ``out_path`` (a new file, the owner's alone); return its manifest.

    It is written beside its name and renamed into place once whole, so a file of that name
    is always a complete backup. With a passphrase it is sealed (classifier.lib.sealed_stream).
    """
    out_path = Path(out_path)
    if out_path.exists():
        raise FileExistsError(f"{out_path} already exists: give a new file name (a backup never overwrites one)")
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        raise FileExistsError(
            f"{partial} exists: another backup to this name is running, or one was interrupted (delete it then)"
        ) from None
    try:
        with os.fdopen(descriptor, "wb") as raw:
            sink = SealedWriter(raw, passphrase) if passphrase else raw
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as archive:
                manifest = _write_members(archive, using)
            if passphrase:
                sink.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def _write_members(archive: tarfile.TarFile, using: str) -> dict:
    written = _Written()
    with _snapshot(using):
        migrations = _applied_migrations(using)
        _write_database(archive, written, using)
    media = _write_files(archive, written, MEDIA, _storage_files())
    trained = _write_files(archive, written, TRAINED_MODELS, _trained_model_files())
    archived = {member.path.removeprefix(MEDIA) for member in written.members if member.path.startswith(MEDIA)}
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_at": timezone.now().isoformat(),
        "software": {"django": django.get_version(), "python": platform.python_version()},
        "database": {
            "vendor": connections[using].vendor,
            "migrations": migrations,
            "rows": written.rows,
        },
        "media": media,
        "trained_models": trained,
        "missing_files": sorted(written.referenced - archived),
        "members": [member.as_dict() for member in written.members],
    }
    data = json.dumps(manifest, indent=1).encode()
    _add(archive, MANIFEST, io.BytesIO(data), len(data))
    return manifest


@contextmanager
def _snapshot(using: str) -> Iterator[None]:
    """One transaction for every read; on PostgreSQL a REPEATABLE READ, READ ONLY one."""
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using):
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # before any read: it fixes the snapshot
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _applied_migrations(using: str) -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app, name in sorted(MigrationRecorder(connections[using]).applied_migrations()):
        applied.setdefault(app, []).append(name)
    return applied


def _write_database(archive: tarfile.TarFile, written: _Written, using: str) -> None:
    part: list = []
    for model in backed_up_models():
        file_fields = [f.attname for f in model._meta.concrete_fields if isinstance(f, FileField)]
        count = 0
        for obj in model._base_manager.using(using).order_by("pk").iterator(chunk_size=CHUNK_ROWS):
            count += 1
            written.referenced.update(stored.name for stored in (getattr(obj, f) for f in file_fields) if stored)
            part.append(obj)
            if len(part) == CHUNK_ROWS:
                _write_part(archive, written, part)
        written.rows[model._meta.label_lower] = count
    if part:
        _write_part(archive, written, part)


def _write_part(archive: tarfile.TarFile, written: _Written, part: list) -> None:
    stream = io.StringIO()
    RowSerializer().serialize(part, stream=stream, cls=ExactJSONEncoder)
    data = gzip.compress(stream.getvalue().encode(), mtime=0)
    name = f"{DATABASE}{sum(m.path.startswith(DATABASE) for m in written.members) + 1:06d}.json.gz"
    written.members.append(_add(archive, name, io.BytesIO(data), len(data)))
    part.clear()


def _storage_files(path: str = "") -> Iterator[tuple[str, int, object]]:
    """(name, size, opener) of every file in the default storage, names with '/'."""
    try:
        folders, files = default_storage.listdir(path)
    except FileNotFoundError:
        return
    for name in sorted(files):
        full = f"{path}/{name}" if path else name
        yield full, default_storage.size(full), lambda full=full: default_storage.open(full, "rb")
    for folder in sorted(folders):
        yield from _storage_files(f"{path}/{folder}" if path else folder)


def _trained_model_files() -> Iterator[tuple[str, int, object]]:
    root = Path(settings.TRAINED_MODEL_ROOT)
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path.relative_to(root).as_posix(), path.stat().st_size, lambda path=path: open(path, "rb")


def _write_files(archive: tarfile.TarFile, written: _Written, prefix: str, files) -> dict:
    count = total = 0
    for name, size, opener in files:
        with opener() as handle:
            written.members.append(_add(archive, prefix + name, handle, size))
        count, total = count + 1, total + size
    return {"files": count, "bytes": total}


def _add(archive: tarfile.TarFile, name: str, handle, size: int) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, PRIVATE_FILE_MODE, int(time.time())
    reader = HashingReader(handle)
    archive.addfile(info, reader)
    return Member(name, size, reader.sha256)
