"""Drawn dermatoscope-like pictures of one lesion over time, for the demo patient: no patient data.

Plain NumPy and Pillow. The same seed draws the same lesion; ``growth`` widens and darkens it, so
a followed lesion changes between visits. Each picture is a JPEG whose EXIF DateTimeOriginal says
when it was "taken", as a camera's would: the upload reads it before stripping the metadata.
"""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
from PIL import Image

EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 0x9003
SIZE = (200, 150)  # HAM10000's pictures' size here


def lesion_picture(seed: int, growth: float, taken_at: datetime, size: tuple[int, int] = SIZE) -> bytes:
    """A pigmented lesion on skin inside a dark vignette, ``growth`` (0 = first visit) times larger."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)

    def smooth_noise(step: int) -> np.ndarray:
        coarse = rng.normal(0, 1, (max(height // step, 2), max(width // step, 2))).astype(np.float32)
        return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))

    skin = np.array([205.0, 148.0, 132.0])
    pixels = np.ones((height, width, 3)) * skin + smooth_noise(10)[..., None] * 8
    cx, cy = width / 2 + rng.uniform(-6, 6), height / 2 + rng.uniform(-5, 5)
    angle = np.arctan2(yy - cy, xx - cx)
    scale = 1 + 0.35 * growth
    radius = np.hypot((xx - cx) / (34 * scale), (yy - cy) / (27 * scale))
    outline = 1 + 0.12 * np.sin(3 * angle + rng.uniform(0, 6)) + (0.08 + 0.06 * growth) * np.sin(5 * angle + 1.3)
    inside = np.clip((outline - radius) * 4, 0, 1)[..., None]
    brown = np.array([120.0, 72.0, 52.0]) * (1 - 0.25 * growth)
    mottle = np.clip(0.5 + 0.5 * smooth_noise(4), 0, 1)[..., None] * (0.5 + 0.3 * growth)
    pigment = brown + (np.array([55.0, 32.0, 30.0]) - brown) * mottle
    pixels = pixels * (1 - inside) + pigment * inside
    vignette = np.hypot((xx - width / 2) / (width * 0.62), (yy - height / 2) / (height * 0.62))
    pixels *= np.clip(1.25 - vignette * 0.55, 0.2, 1)[..., None]
    pixels += rng.normal(0, 3, pixels.shape)
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = taken_at.strftime("%Y:%m:%d %H:%M:%S")
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()
