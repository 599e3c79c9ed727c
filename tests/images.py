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


def dermoscopy_like_png(seed: int, size: tuple[int, int] = (200, 150)) -> bytes:
    """A drawn pigmented lesion as a dermatoscope frames it: skin, an irregular mottled blot, a dark vignette.

    Close enough to HAM10000's pictures that the shipped model's out-of-distribution
    check usually accepts it (seeds 0-11: scores 0.55-1.02, 1 means flagged), so a
    test can show the page a clinician gets for a lesion. No real patient data.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)

    def smooth_noise(step: int) -> np.ndarray:
        coarse = rng.normal(0, 1, (max(height // step, 2), max(width // step, 2))).astype(np.float32)
        return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))

    skin = np.array([rng.uniform(185, 225), rng.uniform(130, 165), rng.uniform(115, 150)])
    pixels = np.ones((height, width, 3)) * skin + smooth_noise(10)[..., None] * 8
    cx, cy = width / 2 + rng.uniform(-10, 10), height / 2 + rng.uniform(-8, 8)
    angle = np.arctan2(yy - cy, xx - cx)
    radius = np.hypot((xx - cx) / rng.uniform(38, 55), (yy - cy) / rng.uniform(30, 45))
    outline = 1 + 0.12 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.08 * np.sin(5 * angle + rng.uniform(0, 6))
    inside = np.clip((outline - radius) * 4, 0, 1)[..., None]
    brown = np.array([rng.uniform(90, 140), rng.uniform(55, 85), rng.uniform(40, 65)])
    mottle = np.clip(0.5 + 0.5 * smooth_noise(4), 0, 1)[..., None] * 0.6
    pigment = brown + (np.array([60, 35, 30]) - brown) * mottle
    pixels = pixels * (1 - inside) + pigment * inside
    vignette = np.hypot((xx - width / 2) / (width * 0.62), (yy - height / 2) / (height * 0.62))
    pixels *= np.clip(1.25 - vignette * 0.55, 0.2, 1)[..., None]
    pixels += rng.normal(0, 3, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
