"""Thumbnails: the small pictures lists show instead of the stored image.

A stored image is the upload's full resolution as PNG (a 6000x4000 photo is tens
of megabytes); a list of ten of them must not fetch that. Each image gets one
thumbnail, made at upload from the pixels the web process already decoded, or on
first request for an image stored before thumbnails existed. Like the image, it is
content-addressed by the upload's SHA-256, so identical uploads share one file.

The picture is made by classifier.lib.imaging.make_thumbnail (plain Pillow, called
while the upload's pixels are decoded); this module names and stores it through
Django's default_storage.
"""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from classifier.lib.imaging import make_thumbnail


def thumbnail_name(sha256: str) -> str:
    """Where an upload's thumbnail is stored, beside images/<sha[:2]>/<sha>.png."""
    return f"thumbs/{sha256[:2]}/{sha256}.webp"


def store_thumbnail(sha256: str, thumbnail: bytes) -> str | None:
    """Store an upload's thumbnail; return its name, or None if one was stored already.

    The caller removes the returned file if what it is storing fails.
    """
    name = thumbnail_name(sha256)
    if default_storage.exists(name):
        return None
    saved = default_storage.save(name, ContentFile(thumbnail))
    if saved != name:
        # Another request stored the same thumbnail between exists() and save(), and
        # the storage chose a new name for this copy: keep theirs.
        default_storage.delete(saved)
        return None
    return saved


def ensure_thumbnail(image) -> str:
    """The stored name of a LesionImage's thumbnail, made from its stored file if it has none.

    Raises FileNotFoundError when the stored image itself is missing.
    """
    name = thumbnail_name(image.sha256)
    if not default_storage.exists(name):
        store_thumbnail(image.sha256, make_thumbnail(image.open_pixels()))
    return name
