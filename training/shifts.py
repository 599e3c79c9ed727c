"""Picture shifts that mimic other centres and dermatoscopes, for measuring robustness.

HAM10000's pictures are uniform: lesion centred, 200x150, one resampling path. An
upload from another clinic is not. Each shift here takes a HAM10000 picture (PIL RGB),
its lesion mask (PIL L, the lesion where the value is >= 128) and a NumPy Generator,
and returns ``Shifted(picture, mask)``: the picture as a clinician's upload might
arrive (any size; the serving path resizes it), and the mask moved with it, so a
heatmap can still be scored against the lesion.

Deterministic: the same picture, mask and seed give the same result
(``shift_rng`` derives a picture's generator from the seed, the shift's name and the
image id, so a subset of images gets the same shifted pictures as the full set).

Pillow, NumPy and SciPy only.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

LESION_LEVEL = 128  # the masks' README: the lesion is where the value is >= 128
HIGH_QUALITY = Image.Resampling.LANCZOS


class Shifted(NamedTuple):
    picture: Image.Image  # RGB
    mask: Image.Image  # L, same size as the picture; the lesion where >= LESION_LEVEL


Shift = Callable[[Image.Image, Image.Image, np.random.Generator], Shifted]


def shift_rng(seed: int, shift_name: str, image_key: str) -> np.random.Generator:
    """The generator for one shift of one picture: independent of which other pictures are shifted."""
    return np.random.default_rng([seed, zlib.crc32(shift_name.encode()), zlib.crc32(image_key.encode())])


# --- helpers ---------------------------------------------------------------------------------


def lesion_pixels(mask: Image.Image) -> np.ndarray:
    """Boolean (H, W): where the mask says lesion."""
    return np.asarray(mask.convert("L")) >= LESION_LEVEL


def lesion_box(mask: Image.Image) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the lesion in pixels, exclusive right/bottom; the whole frame if none."""
    lesion = lesion_pixels(mask)
    if not lesion.any():
        return (0, 0, mask.width, mask.height)
    rows, columns = np.nonzero(lesion.any(axis=1))[0], np.nonzero(lesion.any(axis=0))[0]
    return (int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1)


def lesion_centroid(mask: Image.Image) -> tuple[float, float]:
    """(x, y) of the lesion's centre of mass in pixels; the frame's centre if there is no lesion."""
    lesion = lesion_pixels(mask)
    if not lesion.any():
        return (mask.width / 2, mask.height / 2)
    rows, columns = np.nonzero(lesion)
    return (float(columns.mean()) + 0.5, float(rows.mean()) + 0.5)


def _window(size: tuple[int, int], centre: tuple[float, float], width: float, aspect: float) -> tuple[int, ...]:
    """A (left, top, right, bottom) window of this width and aspect (w / h), centred where asked, inside the frame."""
    frame_width, frame_height = size
    width = min(width, frame_width, frame_height * aspect)
    height = width / aspect
    left = min(max(centre[0] - width / 2, 0.0), frame_width - width)
    top = min(max(centre[1] - height / 2, 0.0), frame_height - height)
    return tuple(int(round(edge)) for edge in (left, top, left + width, top + height))


def _crop_to_size(shifted: Shifted, box: tuple[int, ...], size: tuple[int, int]) -> Shifted:
    """Crop both to ``box`` and resize to ``size`` with a high-quality filter (a sharper camera's framing)."""
    return Shifted(
        shifted.picture.crop(box).resize(size, HIGH_QUALITY),
        shifted.mask.crop(box).resize(size, Image.Resampling.BILINEAR),
    )


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """About a Gaussian blur of this sigma: three box blurs, whose cost does not grow with the width."""
    width = max(1, int(round(np.sqrt(4 * sigma**2 + 1))))
    size = (width, width) + (1,) * (values.ndim - 2)  # over rows and columns, never across colour channels
    for _ in range(3):
        values = ndimage.uniform_filter(values, size, mode="nearest")
    return values


def _blend(pixels: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised blur: the weighted local mean colour (H, W, 3), and the local weight it rests on (H, W)."""
    support = _smooth(weight, sigma)
    spread = np.stack([_smooth(pixels[..., c] * weight, sigma) for c in range(3)], axis=-1)
    return spread / np.maximum(support, 1e-6)[..., None], support


def _coarse_blend(pixels: np.ndarray, weight: np.ndarray, sigma: float, step: int = 4):
    """``_blend`` for a broad sigma, computed on a grid ``step`` times coarser (the result is smooth anyway)."""
    height, width = weight.shape
    rows, columns = -(-height // step) * step, -(-width // step) * step
    pads = ((0, rows - height), (0, columns - width))
    coarse_weight = np.pad(weight, pads, mode="edge").reshape(rows // step, step, columns // step, step)
    coarse_pixels = np.pad(pixels, (*pads, (0, 0)), mode="edge").reshape(rows // step, step, columns // step, step, 3)
    colour, support = _blend(coarse_pixels.mean(axis=(1, 3)), coarse_weight.mean(axis=(1, 3)), sigma / step)
    colour = np.repeat(np.repeat(colour, step, axis=0), step, axis=1)[:height, :width]
    support = np.repeat(np.repeat(support, step, axis=0), step, axis=1)[:height, :width]
    return _smooth(colour, step / 2), _smooth(support, step / 2)


def _dark_corners(dark: np.ndarray) -> np.ndarray:
    """The broad dark regions that touch the picture's edge (an old vignette), a little dilated; not hairs."""
    broad = ndimage.binary_opening(dark, iterations=3)  # thin structures (hairs) go
    regions, count = ndimage.label(broad)
    edge = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    return ndimage.binary_dilation(np.isin(regions, edge[edge > 0]), iterations=3) if count else broad


def _skin_border(
    pixels: np.ndarray, lesion: np.ndarray, pads: tuple, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A larger field of plausible skin around the picture, and how much of the picture to keep at each pixel.

    Reflecting the picture itself would repeat any lesion that touches an edge, and the
    dark corners many HAM10000 pictures already have would come back as dark diamonds.
    So the field is the skin's smooth colour (a normalised blur over the pixels that are
    neither lesion nor dark corner, local near the picture and broader further out) plus
    the skin's fine texture (hairs, pores, grain) reflected, with a little noise where
    there was no skin to take texture from. The picture fades into the field over a
    band at its edges, and its own dark corners give way to the field, so no frame shows.
    """
    height, width = lesion.shape
    luminance = pixels.mean(axis=2)
    skin_level = np.median(luminance[~lesion]) if (~lesion).any() else np.median(luminance)
    dark = _dark_corners((luminance < 0.6 * skin_level) & ~lesion)
    not_skin = ndimage.binary_dilation(lesion, iterations=3) | dark
    skin = (~not_skin).astype(np.float64)
    if skin.sum() < 0.02 * skin.size:  # the lesion fills the frame: its colours are all there is
        skin, dark = np.ones_like(skin), np.zeros_like(dark)
    fine, _ = _blend(pixels, skin, 3.0)
    texture = np.where(not_skin[..., None], 0.0, pixels - fine)

    field_weight = np.pad(skin, pads, mode="constant")
    field_pixels = np.pad(pixels * skin[..., None], (*pads, (0, 0)), mode="constant")
    near, near_support = _blend(field_pixels, field_weight, 0.05 * max(height, width))
    far, far_support = _coarse_blend(field_pixels, field_weight, 0.25 * max(height, width))
    far = np.where(far_support[..., None] > 1e-4, far, pixels[skin > 0].mean(axis=0))
    local = np.clip(near_support / 0.3, 0.0, 1.0)[..., None]
    colour = local * near + (1 - local) * far
    reflected = np.pad(texture, (*pads, (0, 0)), mode="symmetric")
    untextured = np.pad(not_skin, pads, mode="symmetric")[..., None]
    field = colour + reflected + untextured * rng.normal(0.0, 2.0, reflected.shape)

    band = 0.08 * min(height, width)
    ys, xs = np.mgrid[0:height, 0:width]
    to_edge = np.minimum(np.minimum(xs + 0.5, width - xs - 0.5), np.minimum(ys + 0.5, height - ys - 0.5))
    keep = np.clip(to_edge / band, 0.0, 1.0) * (1 - _smooth(dark.astype(np.float64), 2.0))
    return field, keep


def _field(picture: Image.Image, mask: Image.Image, pad_x: int, pad_y: int, rng: np.random.Generator) -> Shifted:
    """The picture in the middle of a larger field of skin (``_skin_border``); the mask padded with 0."""
    pixels = np.asarray(picture, dtype=np.float64)
    pads = ((pad_y, pad_y), (pad_x, pad_x))
    field, keep = _skin_border(pixels, lesion_pixels(mask), pads, rng)
    inner = field[pad_y : pad_y + picture.height, pad_x : pad_x + picture.width]
    inner[...] = keep[..., None] * pixels + (1 - keep[..., None]) * inner
    kept_mask = np.where(keep >= 0.5, np.asarray(mask.convert("L")), 0).astype(np.uint8)
    field_mask = np.pad(kept_mask, pads, mode="constant")
    return Shifted(_to_rgb(field), Image.fromarray(field_mask, mode="L"))


def _to_rgb(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="RGB")


def dark_circle(shifted: Shifted, rng: np.random.Generator, radius_share: tuple[float, float]) -> Shifted:
    """A dermatoscope's dark circular vignette: black outside a circle, with a soft edge and sensor noise.

    ``radius_share``: the circle's radius as a share of the picture's half-diagonal
    (drawn uniformly in that range); below 1 the corners go dark. Lesion pixels under
    the dark part leave the mask: it says where the lesion can still be seen.
    """
    width, height = shifted.picture.size
    half_diagonal = np.hypot(width, height) / 2
    radius = rng.uniform(*radius_share) * half_diagonal
    centre_x = width / 2 + rng.uniform(-0.03, 0.03) * width
    centre_y = height / 2 + rng.uniform(-0.03, 0.03) * height
    softness = 0.04 * radius
    ys, xs = np.mgrid[0:height, 0:width]
    distance = np.hypot(xs + 0.5 - centre_x, ys + 0.5 - centre_y)
    dark = np.clip((distance - radius) / softness + 0.5, 0.0, 1.0)[..., None]
    black = rng.uniform(4.0, 18.0) + rng.normal(0.0, 1.5, (height, width, 3))
    pixels = np.asarray(shifted.picture, dtype=np.float64) * (1 - dark) + black * dark
    mask = np.where(dark[..., 0] < 0.5, np.asarray(shifted.mask), 0).astype(np.uint8)
    return Shifted(_to_rgb(pixels), Image.fromarray(mask, mode="L"))


# --- the shifts: framing and scale -------------------------------------------------------------


def zoom_in(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """Zoomed in: the lesion fills the frame (its box plus a 5-20 % margin, 1.4-3x closer), same aspect."""
    left, top, right, bottom = lesion_box(mask)
    aspect = picture.width / picture.height
    margin = 1 + 2 * rng.uniform(0.05, 0.20)
    width = max((right - left) * margin, (bottom - top) * margin * aspect)
    width = float(np.clip(width, picture.width / 3.0, picture.width / 1.4))
    box = _window(picture.size, ((left + right) / 2, (top + bottom) / 2), width, aspect)
    return _crop_to_size(Shifted(picture, mask), box, picture.size)


def zoom_out(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """Zoomed out: the picture in the middle of a field 1.6-2.2x its size (reflected skin), then a dark vignette.

    The lesion keeps its pixels but becomes a smaller part of a larger picture, as
    with a dermatoscope whose field of view is wider than HAM10000's framing.
    """
    factor = rng.uniform(1.6, 2.2)
    pad_x = int(round((factor - 1) * picture.width / 2))
    pad_y = int(round((factor - 1) * picture.height / 2))
    return dark_circle(_field(picture, mask, pad_x, pad_y, rng), rng, (0.65, 0.85))


def off_centre(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """Off-centre: the whole picture moved 20-30 % of its size towards a side or corner, reflected skin filling in."""
    directions = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
    dx, dy = directions[rng.integers(len(directions))]
    move_x = int(round(dx * rng.uniform(0.20, 0.30) * picture.width))
    move_y = int(round(dy * rng.uniform(0.20, 0.30) * picture.height))
    pad_x, pad_y = abs(move_x), abs(move_y)
    field = _field(picture, mask, pad_x, pad_y, rng)
    # The window that shows the picture moved by (move_x, move_y).
    left, top = pad_x - move_x, pad_y - move_y
    box = (left, top, left + picture.width, top + picture.height)
    return Shifted(field.picture.crop(box), field.mask.crop(box))


def overflow(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """The lesion filling and overflowing the frame: a window inside its bounding box, 60-90 % of it, same aspect."""
    left, top, right, bottom = lesion_box(mask)
    aspect = picture.width / picture.height
    width = rng.uniform(0.6, 0.9) * min(right - left, (bottom - top) * aspect)
    width = max(width, 16.0)  # a tiny lesion still gives a picture the serving path can resize
    centre = (
        (left + right) / 2 + rng.uniform(-0.05, 0.05) * (right - left),
        (top + bottom) / 2 + rng.uniform(-0.05, 0.05) * (bottom - top),
    )
    box = _window(picture.size, centre, width, aspect)
    return _crop_to_size(Shifted(picture, mask), box, picture.size)


def vignette(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """A dark circular vignette on the original framing: the corners and sides dark, as many dermatoscopes leave."""
    return dark_circle(Shifted(picture, mask.convert("L")), rng, (0.65, 0.85))


def rotated(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """Rotated 30-60 degrees either way about the centre, the corners filled with reflected skin."""
    angle = rng.uniform(30.0, 60.0) * rng.choice([-1.0, 1.0])
    # Enough border that the turned field still covers the whole frame.
    cos, sin = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    pad_x = int(np.ceil((picture.width * cos + picture.height * sin - picture.width) / 2)) + 2
    pad_y = int(np.ceil((picture.width * sin + picture.height * cos - picture.height) / 2)) + 2
    field = _field(picture, mask, pad_x, pad_y, rng)
    box = (pad_x, pad_y, pad_x + picture.width, pad_y + picture.height)
    turned_picture = field.picture.rotate(angle, resample=Image.Resampling.BICUBIC)
    turned_mask = field.mask.rotate(angle, resample=Image.Resampling.BILINEAR)
    return Shifted(turned_picture.crop(box), turned_mask.crop(box))


def _centre_crop(picture: Image.Image, mask: Image.Image, aspect: float) -> Shifted:
    box = _window(picture.size, (picture.width / 2, picture.height / 2), picture.width, aspect)
    return Shifted(picture.crop(box), mask.convert("L").crop(box))


def square_crop(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """Another aspect ratio: a 1:1 centre crop (what a square sensor or a cropping app delivers)."""
    return _centre_crop(picture, mask, 1.0)


def wide_crop(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """Another aspect ratio: a 16:9 centre crop (a phone's video-shaped frame on the dermatoscope)."""
    return _centre_crop(picture, mask, 16 / 9)


def high_resolution(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """Arriving at 3-5x the training resolution, so the serving path downscales it in one step.

    What it does: upsamples the 200x150 picture with Lanczos (3-5x, e.g. 800x600), then
    adds what a camera adds at that resolution and a smooth upsample lacks: mild
    sharpening (unsharp mask) and sensor-like grain (signal-dependent luminance noise
    plus weaker colour noise, per pixel). The serving path then reduces it to the
    model's input in one antialiased step instead of HAM10000's path (the
    publisher's 600x450 -> 200x150, then 200x150 -> the input), which is the
    difference a clinician's full-size upload brings.

    What it does not: add the genuine fine detail of a high-resolution original
    (pigment network, hairs and pores at scales the 200x150 copy has already lost), nor
    a particular camera's optics, demosaicing or noise spectrum; the lesion's scale and
    framing stay HAM10000's. It measures the resampling path and pixel-level
    texture, not a real high-resolution dermatoscope.
    """
    factor = rng.uniform(3.0, 5.0)
    size = (int(round(picture.width * factor)), int(round(picture.height * factor)))
    large = picture.resize(size, HIGH_QUALITY).filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=1))
    pixels = np.asarray(large, dtype=np.float32)
    grain = rng.standard_normal(pixels.shape[:2], dtype=np.float32)[..., None] * np.sqrt(0.06 * pixels + 2.0)
    grain += rng.standard_normal(pixels.shape, dtype=np.float32)  # weaker colour noise, sigma 1
    pixels += grain
    return Shifted(_to_rgb(pixels), mask.convert("L").resize(size, Image.Resampling.BILINEAR))


# --- the shifts: pixels ----------------------------------------------------------------------


def jpeg_50(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """Saved as JPEG at quality 50 (4:2:0 chroma), as a messaging app or an old PACS export might."""
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=50)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return Shifted(decoded.convert("RGB"), mask.convert("L"))


def white_balance(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """An illuminant / white-balance shift: red and blue gains 12-22 % apart in linear light, warmer or cooler."""
    strength = rng.uniform(0.12, 0.22) * rng.choice([-1.0, 1.0])  # + warmer (tungsten), - cooler (daylight LEDs)
    gains = np.array([1 + strength, 1.0, 1 - strength])
    linear = (np.asarray(picture, dtype=np.float64) / 255.0) ** 2.2
    shifted = np.clip(linear * gains, 0.0, 1.0) ** (1 / 2.2) * 255.0
    return Shifted(_to_rgb(shifted), mask.convert("L"))


def blur(picture: Image.Image, mask: Image.Image, rng: np.random.Generator) -> Shifted:
    """Out of focus: a Gaussian blur of radius 1.0-1.5 pixels at HAM10000's 200x150."""
    radius = rng.uniform(1.0, 1.5)
    return Shifted(picture.filter(ImageFilter.GaussianBlur(radius)), mask.convert("L"))


SHIFTS: dict[str, Shift] = {
    "zoom_in": zoom_in,
    "zoom_out_vignette": zoom_out,
    "off_centre": off_centre,
    "overflow": overflow,
    "vignette": vignette,
    "rotated": rotated,
    "square_crop": square_crop,
    "wide_crop": wide_crop,
    "high_resolution": high_resolution,
    "jpeg_50": jpeg_50,
    "white_balance": white_balance,
    "blur": blur,
}


def describe(name: str) -> str:
    """The first line of a shift's docstring: what the report says it does."""
    return (SHIFTS[name].__doc__ or name).strip().splitlines()[0]


def apply_shift(name: str, picture: Image.Image, mask: Image.Image, seed: int, image_key: str) -> Shifted:
    """Shift one picture by name, with its own generator (see ``shift_rng``)."""
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; known shifts: {', '.join(SHIFTS)}")
    picture = picture if picture.mode == "RGB" else picture.convert("RGB")
    return SHIFTS[name](picture, mask.convert("L"), shift_rng(seed, name, image_key))
