"""Site-trained model versions in the object store, so that a worker on any host can serve them.

A finished version's folder is put under ``model-versions/<folder>/`` in the default storage
(settings.MODEL_VERSIONS_IN_STORE, on with object storage). Its card lists every other file
with its SHA-256 and size (``files``), and the card is the registered one: the database's copy
(ModelVersion.card) is what a worker checks a download against (worker.model_fetch), so a file
changed in the bucket is refused even if the card in the bucket was changed with it.

The card is put last: a folder whose card is in the store is complete, and only such folders
are registered (classifier.registry).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from classifier.object_storage import STORAGE_ERRORS
from training.card import CARD_FILENAME, MODEL_FILENAME, CardError, ModelCard, parse_card, write_card

logger = logging.getLogger(__name__)

STORE_FOLDER = "model-versions"
CHUNK = 1024 * 1024


class PublishError(RuntimeError):
    """The version could not be put in the store."""


def store_name(directory: str, relative: str = "") -> str:
    """The storage name of a version's file (or of its folder, for ``relative=""``)."""
    return f"{STORE_FOLDER}/{directory}/{relative}".rstrip("/")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(version_dir: Path) -> dict[str, dict]:
    """Every file of a version folder but its card: relative name (with '/') → sha256 and bytes."""
    return {
        path.relative_to(version_dir).as_posix(): {"sha256": file_digest(path), "bytes": path.stat().st_size}
        for path in sorted(version_dir.rglob("*"))
        if path.is_file() and path.name != CARD_FILENAME
    }


def with_file_list(version_dir: Path, card: dict) -> dict:
    """The card with ``files`` (each file's SHA-256), written back into the folder."""
    card = {**card, "files": list_files(version_dir)}
    write_card(version_dir, card)
    return card


def publish_version(version_dir: Path) -> dict:
    """Put a finished version folder in the store; return its card (with ``files``) as registered.

    Raises PublishError when the store refuses or cannot be reached; what was put so far is
    removed again, so no half version stays (its card, put last, would be missing anyway).
    """
    version_dir = Path(version_dir)
    card = json.loads((version_dir / CARD_FILENAME).read_text(encoding="utf-8"))
    card = with_file_list(version_dir, card)
    put: list[str] = []
    try:
        for relative in [*card["files"], CARD_FILENAME]:
            name = store_name(version_dir.name, relative)
            if default_storage.exists(name):
                raise PublishError(f"{name} is already in the store: a version folder's name is never reused")
            with open(version_dir / relative, "rb") as handle:
                saved = default_storage.save(name, File(handle, name=relative))
            put.append(saved)
    except (PublishError, OSError, *STORAGE_ERRORS) as exc:
        for name in put:
            try:
                default_storage.delete(name)
            except STORAGE_ERRORS:
                logger.warning("Could not remove %s from the store after a failed publish", name)
        if isinstance(exc, PublishError):
            raise
        raise PublishError(f"The object store refused the version: {exc.__class__.__name__}: {exc}") from exc
    logger.info("Put model version %s in the store (%d files)", card["version"], len(put))
    return card


def stored_cards() -> list[tuple[str, ModelCard]]:
    """(folder, card) of each complete version in the store; an unreadable card is skipped with a warning."""
    if not settings.MODEL_VERSIONS_IN_STORE:
        return []
    try:
        folders, _ = default_storage.listdir(STORE_FOLDER)
    except FileNotFoundError:
        return []
    except STORAGE_ERRORS as exc:
        # Registration goes on with the local folders; the next run (or a worker's fetch) tries again.
        logger.warning("The object store could not be listed for model versions: %s", exc)
        return []
    found = []
    for folder in sorted(folders):
        name = store_name(folder, CARD_FILENAME)
        try:
            with default_storage.open(name, "rb") as handle:
                card = parse_card(json.loads(handle.read().decode("utf-8")))
        except FileNotFoundError:
            continue  # still being put there, or a half-removed version
        except (CardError, UnicodeDecodeError, json.JSONDecodeError, *STORAGE_ERRORS) as exc:
            logger.warning("Skipping model folder %s in the store: %s", name, exc)
            continue
        found.append((folder, card))
    return found


def is_stored(directory: str) -> bool:
    """Whether the store holds this version's card and model (what /healthz asks on the web host)."""
    return settings.MODEL_VERSIONS_IN_STORE and all(
        default_storage.exists(store_name(directory, name)) for name in (CARD_FILENAME, MODEL_FILENAME)
    )


def remove_version(directory: str) -> None:
    """Delete a version's files from the store (a job that failed after putting them there)."""
    try:
        for relative in list_stored(directory):
            default_storage.delete(store_name(directory, relative))
    except FileNotFoundError:
        return
    except STORAGE_ERRORS as exc:
        logger.warning("Could not remove model folder %s from the store: %s", directory, exc)


def list_stored(directory: str, sub: str = "") -> list[str]:
    """Every file name under a version's folder in the store, relative to it."""
    folders, files = default_storage.listdir(store_name(directory, sub))
    names = [f"{sub}/{name}" if sub else name for name in files]
    for folder in folders:
        names += list_stored(directory, f"{sub}/{folder}" if sub else folder)
    return names
