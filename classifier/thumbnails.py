"""Thumbnails: the small pictures lists show instead of the stored image.

A stored image is the upload's full resolution as PNG (a 6000x4000 photo is tens
of megabytes); a list of ten of them must not fetch that. Each image gets one
thumbnail, made at upload from the pixels the web process already decoded, or on
first request for an image stored before thumbnails existed. Like the image, it is
content-addressed by the upload's SHA-256, so identical uploads share one file.

make_thumbnail() is plain Pillow (classifier.imaging calls it while it holds the
decoded pixels); the functions after it store through Django's default_storage.
"""

from __future__ import annotations

import io

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

# The longest side: sharp at twice the lists' 48-56 px cells (high-density
# screens), and a few kilobytes as WebP.
THUMBNAIL_SIDE = 256
# WebP's fastest method: the upload request waits for it, and at this size the
# slower methods save a few hundred bytes.
WEBP_OPTIONS = {"quality": 80, "method": 0}
CONTENT_TYPE = "image/webp"


def make_thumbnail(image: Image.Image) -> bytes:
    """An RGB picture shrunk to fit THUMBNAIL_SIDE (never enlarged), as WebP bytes."""
    scale = min(1.0, THUMBNAIL_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: shrink by whole factors first, then resample; as good as a full
    # resample to the eye and several times faster on a large picture.
    small = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0) if scale < 1 else image
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, "WEBP", **WEBP_OPTIONS)
    return buffer.getvalue()


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
        with image.file.open("rb") as handle, Image.open(handle, formats=["PNG"]) as stored:
            store_thumbnail(image.sha256, make_thumbnail(stored))
    return name
