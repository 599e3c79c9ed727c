"""The backup archive's format, shared by writing it (classifier.backups) and restoring it (classifier.restore).

One tar stream, optionally sealed with a passphrase (classifier.lib.sealed_stream)::

    database/000001.json.gz ...   the rows, Django's JSON serialization, CHUNK_ROWS rows a part
    media/<storage name> ...      every file of the default storage (pictures, thumbnails)
    trained-models/<path> ...     every file under TRAINED_MODEL_ROOT (the site-trained versions)
    manifest.json                 last: versions, row and file counts, and each member's size and SHA-256

The manifest comes last because it holds the hashes of what was written before it; a
restore reads the whole archive once to check them before it changes anything.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.core.serializers.json import Serializer as JsonSerializer

from classifier.lib.sealed_stream import SealedReader, SealError, is_sealed

FORMAT = "lesionsite backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE, MEDIA, TRAINED_MODELS = "database/", "media/", "trained-models/"
CHUNK_ROWS = 2000  # rows per database part: a part is built in memory, a few MB with heatmaps
# Made by migrate in every installation, with ids of their own there: left out, and the rows
# that point at them name them by natural key (app, model, codename) instead of by id.
MADE_BY_MIGRATE = (ContentType, Permission)
# Sessions are not kept: a restored site signs everyone in again (and a backup holds no live session keys).
NOT_BACKED_UP = {"contenttypes.contenttype", "auth.permission", "sessions.session"}


class BackupInvalid(Exception):
    """The archive cannot be restored as it is; the message says why, naming the file."""


@dataclass(frozen=True)
class Member:
    path: str
    size: int
    sha256: str

    def as_dict(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def backed_up_models() -> list:
    """Every concrete model whose rows a backup holds, in a fixed order."""
    from django.apps import apps

    return sorted(
        (
            model
            for model in apps.get_models()
            if model._meta.managed and not model._meta.proxy and model._meta.label_lower not in NOT_BACKED_UP
        ),
        key=lambda model: model._meta.label_lower,
    )


class RowSerializer(JsonSerializer):
    """Django's JSON serialization, with natural keys for the rows migrate makes, and exact times.

    Other relations keep their ids, which the restore keeps too. Django's own encoder cuts
    datetimes to milliseconds; a backup keeps the microseconds.
    """

    def handle_fk_field(self, obj, field):
        self.use_natural_foreign_keys = field.remote_field.model in MADE_BY_MIGRATE
        super().handle_fk_field(obj, field)

    def handle_m2m_field(self, obj, field):
        self.use_natural_foreign_keys = field.remote_field.model in MADE_BY_MIGRATE
        super().handle_m2m_field(obj, field)


class ExactJSONEncoder(DjangoJSONEncoder):
    def default(self, o):
        import datetime

        if isinstance(o, datetime.datetime | datetime.time):
            return o.isoformat()
        return super().default(o)


class HashingReader:
    """Reads from ``raw`` and counts and hashes what was read (the storage and tarfile need only read())."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self._hash, self.size = raw, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def is_encrypted(path: Path) -> bool:
    with open(path, "rb") as handle:
        return is_sealed(handle.read(16))


def safe_member_path(name: str) -> str:
    """The member's name if it is one a backup writes (under a known folder, no '..'); else BackupInvalid."""
    path = PurePosixPath(name)
    if name == MANIFEST:
        return name
    if path.is_absolute() or ".." in path.parts or not name.startswith((DATABASE, MEDIA, TRAINED_MODELS)):
        raise BackupInvalid(f"it holds {name!r}, which is not a file a lesionsite backup writes")
    return name


READ_ERRORS = (SealError, tarfile.TarError, EOFError, OSError)


def _unreadable(error: Exception) -> BackupInvalid:
    if isinstance(error, SealError):
        return BackupInvalid(str(error))
    return BackupInvalid(f"it is not a lesionsite backup, or it is damaged or cut short ({error})")


@contextmanager
def open_members(path: Path, passphrase: str | None) -> Iterator[Iterator[tuple[str, HashingReader]]]:
    """The archive's members in order, each as (name, a reader that hashes what it reads).

    Read each member before asking for the next (the archive is a stream). What fails in
    reading it (not a backup, damaged, wrong passphrase) is BackupInvalid with the reason;
    what the caller raises passes through as it is.
    """
    with open(path, "rb") as raw:
        encrypted = is_sealed(raw.read(16))
        raw.seek(0)
        if encrypted and not passphrase:
            raise BackupInvalid("it is encrypted: give its passphrase (BACKUP_PASSPHRASE, or at the prompt)")
        try:
            source = SealedReader(raw, passphrase) if encrypted else raw
            archive = tarfile.open(fileobj=source, mode="r|")
        except READ_ERRORS as error:
            raise _unreadable(error) from None
        with archive:
            yield _members(archive)
        if encrypted:
            try:
                source.read_to_end()
            except READ_ERRORS as error:
                raise _unreadable(error) from None


class _MemberReader(HashingReader):
    def read(self, size: int = -1) -> bytes:
        try:
            return super().read(size)
        except READ_ERRORS as error:
            raise _unreadable(error) from None


def _members(archive: tarfile.TarFile) -> Iterator[tuple[str, HashingReader]]:
    infos = iter(archive)
    while True:
        try:
            info = next(infos, None)
        except READ_ERRORS as error:
            raise _unreadable(error) from None
        if info is None:
            return
        name = safe_member_path(info.name)
        if not info.isfile():
            raise BackupInvalid(f"{name} is not a plain file")
        yield name, _MemberReader(archive.extractfile(info))


def read_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BackupInvalid("its manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupInvalid("its manifest is not a lesionsite backup's")
    if missing := [key for key in ("database", "media", "trained_models", "members") if key not in manifest]:
        raise BackupInvalid(f"its manifest lacks {', '.join(missing)}")
    if manifest.get("version") != FORMAT_VERSION:
        raise BackupInvalid(
            f"it is in backup format {manifest.get('version')!r}; this lesionsite reads format {FORMAT_VERSION}"
        )
    return manifest
