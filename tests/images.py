"""Small images made in memory, so tests never depend on data outside the repo."""

from __future__ import annotations

import io

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), seed: int = 0, mode: str = "RGB") -> bytes:
    """A picture of smooth noise: different seeds give different bytes (and SHA-256)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def upload(name: str = "lesion.png", data: bytes | None = None, **kwargs) -> SimpleUploadedFile:
    content = image_bytes(**kwargs) if data is None else data
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")
