"""A prediction's heatmap drawn over a picture of the lesion, as one PNG (for the PDF report).

The pages draw the heatmap in the browser (static/heatmap.js, static/compare.js); a PDF
cannot run a script, so the same picture is made here with Pillow: the explanation's grid
coloured with the browser's ramp, stretched smoothly over the box of the picture the model
saw, and laid over the picture. The box is in fractions of the picture and may reach past
its edges (the "pad" geometry letterboxes): what falls outside is cut off, as on the page.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

MAX_SIDE = 256  # a thumbnail's size: the report prints it about 26 mm wide
OPACITY = 0.65  # the strongest cell's alpha, as on the page: weak evidence leaves the lesion visible


def ramp(values: np.ndarray) -> np.ndarray:
    """RGBA (0-255) for values in [0, 1]: blue, yellow, red; the weaker, the more transparent.

    The same ramp as static/heatmap.js's colour(v), so the report shows what the page shows.
    """
    v = np.clip(values.astype(np.float64), 0.0, 1.0)
    red = np.clip(1.5 * v - 0.2, 0.0, 1.0)
    green = np.clip(1 - np.abs(2 * v - 1.1), 0.0, 1.0)
    blue = np.clip(1 - 2 * v, 0.0, 1.0)
    alpha = OPACITY * v
    return np.rint(255 * np.stack([red, green, blue, alpha], axis=-1)).astype(np.uint8)


def heatmap_over(picture: bytes, grid: Sequence[Sequence[float]], box: Sequence[float] | None = None) -> bytes | None:
    """The picture (PNG, WebP, JPEG bytes) with the grid laid over ``box`` (x0, y0, x1, y1 in fractions of it).

    None when there is nothing to draw: an empty grid, a box with no area, or a picture
    Pillow cannot read (the report then says there is no heatmap).
    """
    cells = np.asarray(grid, dtype=np.float64)
    if cells.ndim != 2 or cells.size == 0:
        return None
    x0, y0, x1, y1 = box if box is not None else (0.0, 0.0, 1.0, 1.0)
    try:
        with Image.open(io.BytesIO(picture)) as opened:
            opened.load()
            base = opened.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    base.thumbnail((MAX_SIDE, MAX_SIDE))
    width, height = base.size
    left, top = round(x0 * width), round(y0 * height)
    box_width, box_height = round((x1 - x0) * width), round((y1 - y0) * height)
    if box_width < 1 or box_height < 1:
        return None
    # One pixel per cell, then a bilinear stretch: the browser's smooth scaling of its canvas.
    heat = Image.fromarray(ramp(cells), "RGBA").resize((box_width, box_height), Image.Resampling.BILINEAR)
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    layer.paste(heat, (left, top))  # Pillow clips what lies outside the picture
    out = io.BytesIO()
    Image.alpha_composite(base, layer).convert("RGB").save(out, "PNG")
    return out.getvalue()
