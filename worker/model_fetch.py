"""The local folder of a model version, fetched from the object store when this host has none.

Shipped versions (MODEL_ROOT) and versions trained on this host (TRAINED_MODEL_ROOT) are read
where they are. Any other version is looked for in MODEL_CACHE_DIR and, when missing there (or
cached for another card), downloaded from the store (classifier.model_store) into a hidden
folder beside it, checked file by file against the SHA-256 list of the *registered* card (the
database's, so a file changed in the bucket is caught even with its card), and only then
renamed into place: a folder in the cache is always a complete, checked version. A failed check
or an unreachable store raises ModelFetchError, which inference treats as passing (the
predictions go back to the queue and the sweep sends them again), never as a reason to serve.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from classifier.model_store import CHUNK, store_name
from classifier.models import ModelVersion
from classifier.object_storage import STORAGE_ERRORS
from classifier.private_files import make_private
from training.card import CARD_FILENAME, MODEL_FILENAME, card_digest

logger = logging.getLogger(__name__)


class ModelFetchError(RuntimeError):
    """The version could not be fetched and checked now; trying again later may succeed."""


def local_folder(version: ModelVersion) -> Path:
    """A folder on this host holding the version's files, fetching them if needed (ModelFetchError)."""
    here = version.folder
    if (here / MODEL_FILENAME).is_file() or not settings.MODEL_VERSIONS_IN_STORE:
        return here  # a version missing without a store fails to load with the usual message
    cached = Path(settings.MODEL_CACHE_DIR) / version.directory
    if _holds(cached, version.card):
        return cached
    return _download(version, cached)


def _holds(folder: Path, card: dict) -> bool:
    """The cache folder is this registered card's version (folders only get there checked)."""
    try:
        return card_digest(json.loads((folder / CARD_FILENAME).read_text(encoding="utf-8"))) == card_digest(card)
    except (OSError, ValueError):
        return False


def _download(version: ModelVersion, cached: Path) -> Path:
    listed = version.card.get("files")
    if not isinstance(listed, dict) or MODEL_FILENAME not in listed:
        raise ModelFetchError(
            f"Model version {version.name} is not on this worker, and its card lists no files with their "
            "SHA-256 to check a download from the object store against: it cannot be served here."
        )
    cache_root = cached.parent
    cache_root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".partial-{version.directory}-", dir=cache_root))
    try:
        for relative, expected in listed.items():
            _fetch_file(version, relative, expected, partial)
        (partial / CARD_FILENAME).write_text(json.dumps(version.card, indent=2) + "\n", encoding="utf-8")
        make_private(partial)
        _move_into_place(partial, cached, version.card)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    logger.info("Fetched model version %s from the object store into %s", version.name, cached)
    return cached


def _fetch_file(version: ModelVersion, relative: str, expected: dict, into: Path) -> None:
    target = (into / relative).resolve()
    if into.resolve() not in target.parents:
        raise ModelFetchError(f"Model version {version.name}'s card lists a file outside its folder: {relative!r}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    name = store_name(version.directory, relative)
    try:
        with default_storage.open(name, "rb") as source, open(target, "wb") as sink:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                sink.write(chunk)
    except FileNotFoundError:
        missing = f"Model version {version.name}'s file {relative} is missing from the object store."
        raise ModelFetchError(missing) from None
    except STORAGE_ERRORS as exc:
        raise ModelFetchError(
            f"Model version {version.name} could not be fetched from the object store "
            f"({exc.__class__.__name__}: {exc}); it is tried again."
        ) from exc
    if digest.hexdigest() != expected.get("sha256") or size != expected.get("bytes", size):
        logger.error(
            "Model version %s: %s from the store has SHA-256 %s (%d bytes), its card says %s (%s bytes)",
            version.name, relative, digest.hexdigest(), size, expected.get("sha256"), expected.get("bytes"),
        )  # fmt: skip
        raise ModelFetchError(
            f"Model version {version.name}'s file {relative} in the object store does not match the SHA-256 "
            "its card lists (changed or cut short): it is not served, and the download is tried again."
        )


def _move_into_place(partial: Path, cached: Path, card: dict) -> None:
    """Rename the checked folder into the cache; another process may have put one there first."""
    if _holds(cached, card):
        shutil.rmtree(partial, ignore_errors=True)  # another pool process fetched it meanwhile
        return
    old = None
    if cached.exists():
        # Cached for another card (the version's card was refreshed): set it aside, then swap.
        old = cached.with_name(f".old-{cached.name}-{os.getpid()}")
        try:
            cached.rename(old)
        except OSError:
            old = None
    try:
        partial.rename(cached)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)  # another process's checked copy won the race
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
