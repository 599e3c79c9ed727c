"""Pictures that are plainly not dermatoscopic images, made from NumPy and Pillow.

No photo collection ships with the project (and none may be downloaded), so the
out-of-distribution check is measured on kinds of pictures clinicians are known
to upload by mistake, drawn here: blank or single-colour frames, sensor noise,
screenshots of text and forms, and flat graphics. They measure far-OOD detection
only; near-OOD (a clinical close-up without a dermatoscope, another body part)
cannot be measured without such data, and the model card says so.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("blank", "noise", "screenshot", "graphics", "gradient")
SIZE = (200, 150)  # (width, height), as HAM10000's pictures


def make_picture(kind: str, rng: np.random.Generator, size: tuple[int, int] = SIZE) -> Image.Image:
    width, height = size
    if kind == "blank":
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        return Image.new("RGB", size, colour)
    if kind == "noise":
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if kind == "gradient":
        ramp = np.linspace(0, 1, width)[None, :, None] * np.linspace(0.3, 1, height)[:, None, None]
        start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        return Image.fromarray((start + (end - start) * ramp).astype(np.uint8))
    picture = Image.new("RGB", size, (255, 255, 255) if kind == "screenshot" else _colour(rng))
    draw = ImageDraw.Draw(picture)
    if kind == "screenshot":
        draw.rectangle((0, 0, width, 14), fill=_colour(rng, dark=True))  # a title bar
        y = 20
        while y < height - 10:
            draw.text((6, y), _words(rng), fill=(20, 20, 20))
            if rng.random() < 0.3:
                draw.rectangle((6, y + 12, width // 2, y + 24), outline=(120, 120, 120))  # a form field
                y += 14
            y += 14
        return picture
    if kind == "graphics":
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
            box = (x0, y0, x0 + int(rng.integers(10, 80)), y0 + int(rng.integers(10, 60)))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=_colour(rng))
        return picture
    raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def make_pictures(per_kind: int, seed: int = 0, size: tuple[int, int] = SIZE) -> dict[str, list[Image.Image]]:
    rng = np.random.default_rng(seed)
    return {kind: [make_picture(kind, rng, size) for _ in range(per_kind)] for kind in KINDS}


def _colour(rng: np.random.Generator, dark: bool = False) -> tuple[int, int, int]:
    high = 100 if dark else 256
    return tuple(int(c) for c in rng.integers(0, high, 3))


def _words(rng: np.random.Generator) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        "".join(letters[i] for i in rng.integers(0, 26, int(rng.integers(2, 9))))
        for _ in range(int(rng.integers(2, 6)))
    )
