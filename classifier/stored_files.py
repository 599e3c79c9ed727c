"""A stored picture's files go when the last image that uses them goes.

Files are content-addressed (``images/<sha>.jpg|png``, ``working/<sha>.jpg`` and
``thumbs/<sha>.webp``), so the same
picture uploaded to two clinics is one file: it is deleted only once no remaining image
names it (its thumbnail: once no remaining image has its SHA-256). Every way of deleting
an image (the admin, a queryset's ``delete()``, a patient's erasure, a cascade from its
owner) sends ``post_delete``, and the receiver here removes the files once the deleting
transaction has committed, counting the references then: a rollback keeps the row and
its file, and a row another transaction added meanwhile keeps its file. Raw SQL deletes
send no signal; nothing in the app deletes images so.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete

from classifier.models import LesionImage, UnlabelledImage
from classifier.thumbnails import thumbnail_name

# The folders of the files images name (image_upload_path, working_copy_path,
# thumbnails.thumbnail_name); nothing else in the storage is looked at by the orphan sweep.
PICTURE_FOLDERS = ("images", "working", "thumbs")


def unused_files(images: Iterable[LesionImage], using: str = "default") -> list[str]:
    """The stored files and thumbnails of these (deleted) images that no remaining image uses."""
    images = list(images)
    names = {image.file.name for image in images if image.file.name}
    working = {image.working_file.name for image in images if image.working_file.name}
    digests = {image.sha256 for image in images}
    remaining = LesionImage.objects.using(using)
    still_used = set(remaining.filter(file__in=names).values_list("file", flat=True))
    still_used |= set(remaining.filter(working_file__in=working).values_list("working_file", flat=True))
    shared_digests = set(remaining.filter(sha256__in=digests).values_list("sha256", flat=True))
    unused = (names | working) - still_used
    return sorted(unused) + sorted(thumbnail_name(digest) for digest in digests - shared_digests)


def delete_unused_files(images: Iterable[LesionImage], using: str = "default") -> list[str]:
    """Delete what ``unused_files`` names; return the names of the files that were there."""
    deleted = []
    for name in unused_files(images, using):
        if default_storage.exists(name):
            default_storage.delete(name)
            deleted.append(name)
    return deleted


def _remove_files_after_commit(sender, instance: LesionImage, using: str, **kwargs) -> None:
    transaction.on_commit(lambda: delete_unused_files([instance], using), using=using)


def connect() -> None:
    """Receive the deletions of images, the labelling queue's proxy rows included.

    Per model rather than for every sender: a receiver for all models would stop Django's
    fast bulk deletes everywhere (the audit purge would then load every row it deletes).
    """
    for model in (LesionImage, UnlabelledImage):
        post_delete.connect(_remove_files_after_commit, sender=model, dispatch_uid=f"stored_files:{model.__name__}")


def orphan_files(older_than: datetime) -> list[str]:
    """Stored pictures and thumbnails that no image names, last written before ``older_than``.

    They are left by what the signal cannot see: a process killed between writing a file
    and committing its row, raw SQL, or deletions from before files were removed with their
    rows. A file newer than ``older_than`` may belong to an upload whose row is not yet
    committed, so it is left alone.
    """
    names = set(LesionImage.objects.values_list("file", flat=True))
    names |= set(LesionImage.objects.exclude(working_file="").values_list("working_file", flat=True))
    thumbnails = {thumbnail_name(digest) for digest in LesionImage.objects.values_list("sha256", flat=True)}
    return [
        name
        for name in _stored(PICTURE_FOLDERS)
        if name not in names and name not in thumbnails and default_storage.get_modified_time(name) < older_than
    ]


def _stored(folders: Iterable[str]) -> Iterator[str]:
    for folder in folders:
        try:
            subfolders, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue
        yield from (f"{folder}/{name}" for name in sorted(files))
        yield from _stored(f"{folder}/{name}" for name in sorted(subfolders))
