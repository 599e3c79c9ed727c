"""Framing and capture augmentation: the same lesion as other centres and dermatoscopes picture it.

HAM10000's pictures are uniform: the lesion centred at one scale, one camera's colour,
no vignette, one JPEG quality. Clinics' pictures are not (``training.robustness``
measures how much that costs), so fine-tuning shows each training picture, at the
training scale and before the version's geometry, as another device might have taken
it: zoomed in (the lesion fills or overflows the frame) or out (small, in a larger field
inside a dark circular vignette), off-centre, another aspect ratio, another white
balance and exposure, softer (blur, a lower-resolution sensor) or JPEG-compressed.

The ranges here are this module's own, drawn independently of ``training.shifts``
(the measuring instrument), so a gain on the shifted validation is not a gain on a
copy of the training augmentation. Runs in the tf.data pipeline, one picture at a time.
"""

from __future__ import annotations

import math

# Probability of each change, and its range. Zoom is a factor on the picture's scale:
# above 1 shows a part of it larger, below 1 all of it smaller in a larger field.
P_ZOOM, ZOOM_RANGE = 0.7, (0.55, 1.6)
P_SHIFT, SHIFT_FRACTION = 0.4, 0.22  # the lesion moved by up to this share of the frame
P_ASPECT, ASPECT_RANGE = 0.3, (0.8, 1.25)
P_VIGNETTE, P_VIGNETTE_WHEN_ZOOMED_OUT = 0.2, 0.7
P_COLOUR, CHANNEL_GAIN, EXPOSURE, GAMMA = 0.6, 0.15, 0.15, (0.8, 1.25)
P_BLUR, BLUR_SIGMA = 0.2, (0.5, 1.6)
P_SOFT, SOFT_SCALE = 0.15, (0.45, 0.8)  # down then up again: a sensor or lens with less detail
P_JPEG, JPEG_QUALITY = 0.25, (35, 90)


def describe_framing() -> str:
    """The augmentation in words, for the model card."""
    return (
        f"framing and capture (training.framing), before the geometry: zoom x{ZOOM_RANGE[0]}-{ZOOM_RANGE[1]} "
        f"(p {P_ZOOM}; zoomed out: reflected border, dark circular vignette p {P_VIGNETTE_WHEN_ZOOMED_OUT}), "
        f"off-centre shift up to {SHIFT_FRACTION:.0%} (p {P_SHIFT}), aspect x{ASPECT_RANGE[0]}-{ASPECT_RANGE[1]} "
        f"(p {P_ASPECT}), vignette (p {P_VIGNETTE}), per-channel gain +-{CHANNEL_GAIN:.0%}, exposure "
        f"+-{EXPOSURE:.0%} and gamma {GAMMA[0]}-{GAMMA[1]} (p {P_COLOUR}), blur sigma {BLUR_SIGMA[0]}-"
        f"{BLUR_SIGMA[1]} px (p {P_BLUR}), softened x{SOFT_SCALE[0]}-{SOFT_SCALE[1]} (p {P_SOFT}), "
        f"JPEG quality {JPEG_QUALITY[0]}-{JPEG_QUALITY[1]} (p {P_JPEG})"
    )


def _chance(p: float):
    import tensorflow as tf

    return tf.random.uniform([]) < p


def _log_uniform(low: float, high: float):
    import tensorflow as tf

    return tf.exp(tf.random.uniform([], math.log(low), math.log(high)))


def _resize(picture, height, width):
    import tensorflow as tf

    return tf.image.resize(picture, tf.stack([height, width]), method="bilinear", antialias=True)


def _reflect_into(picture, height, width, top, left):
    """``picture`` placed at (top, left) in a height x width field whose border reflects it."""
    import tensorflow as tf

    shape = tf.shape(picture)
    bottom, right = height - shape[0] - top, width - shape[1] - left
    # REFLECT pads at most the picture's size minus one a side: enough for a zoom-out to 0.5.
    limit_h, limit_w = shape[0] - 1, shape[1] - 1
    paddings = [
        [tf.minimum(top, limit_h), tf.minimum(bottom, limit_h)],
        [tf.minimum(left, limit_w), tf.minimum(right, limit_w)],
        [0, 0],
    ]
    padded = tf.pad(picture, paddings, mode="REFLECT")
    return tf.image.resize_with_crop_or_pad(padded, height, width)


def zoom(picture, factor):
    """Zoomed in (factor > 1: a random window of the picture shown larger) or out (factor < 1:
    the whole picture smaller, at a random place in a reflected field)."""
    import tensorflow as tf

    shape = tf.shape(picture)
    height, width = shape[0], shape[1]
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)

    def zoom_in():
        crop_h = tf.maximum(tf.cast(h / factor, tf.int32), 8)
        crop_w = tf.maximum(tf.cast(w / factor, tf.int32), 8)
        window = tf.image.random_crop(picture, tf.stack([crop_h, crop_w, 3]))
        return _resize(window, height, width)

    def zoom_out():
        small_h = tf.maximum(tf.cast(h * factor, tf.int32), 8)
        small_w = tf.maximum(tf.cast(w * factor, tf.int32), 8)
        small = _resize(picture, small_h, small_w)
        top = tf.random.uniform([], 0, height - small_h + 1, dtype=tf.int32)
        left = tf.random.uniform([], 0, width - small_w + 1, dtype=tf.int32)
        return _reflect_into(small, height, width, top, left)

    return tf.cond(factor >= 1.0, zoom_in, zoom_out)


def shift(picture, fraction: float = SHIFT_FRACTION):
    """The picture moved by up to ``fraction`` of its size each way, the border reflected."""
    import tensorflow as tf

    shape = tf.shape(picture)
    height, width = shape[0], shape[1]
    dy = tf.cast(tf.random.uniform([], -fraction, fraction) * tf.cast(height, tf.float32), tf.int32)
    dx = tf.cast(tf.random.uniform([], -fraction, fraction) * tf.cast(width, tf.float32), tf.int32)
    pad_h, pad_w = tf.abs(dy), tf.abs(dx)
    padded = tf.pad(picture, [[pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="REFLECT")
    return tf.image.crop_to_bounding_box(padded, pad_h - dy, pad_w - dx, height, width)


def stretch(picture, aspect):
    """Another aspect ratio: the width scaled by ``aspect``, then cropped or reflected back to size."""
    import tensorflow as tf

    shape = tf.shape(picture)
    height, width = shape[0], shape[1]
    new_width = tf.maximum(tf.cast(tf.cast(width, tf.float32) * aspect, tf.int32), 8)
    stretched = _resize(picture, height, new_width)

    def crop():
        return tf.image.resize_with_crop_or_pad(stretched, height, width)

    def pad():
        return _reflect_into(stretched, height, width, 0, (width - new_width) // 2)

    return tf.cond(new_width >= width, crop, pad)


def vignette(picture):
    """A dark circular vignette, as many dermatoscopes' optics leave: radius, softness and darkness random."""
    import tensorflow as tf

    shape = tf.shape(picture)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    yy, xx = tf.meshgrid(tf.range(h) - (h - 1) / 2, tf.range(w) - (w - 1) / 2, indexing="ij")
    centre_y, centre_x = tf.random.uniform([], -0.08, 0.08) * h, tf.random.uniform([], -0.08, 0.08) * w
    radius = tf.sqrt((yy - centre_y) ** 2 + (xx - centre_x) ** 2) / (tf.sqrt(h**2 + w**2) / 2)
    edge = tf.random.uniform([], 0.55, 0.95)
    softness = tf.random.uniform([], 0.02, 0.12)
    floor = tf.random.uniform([], 0.0, 0.25)
    mask = floor + (1.0 - floor) * tf.sigmoid((edge - radius) / softness)
    return picture * mask[..., None]


def recolour(picture):
    """Another camera, light and white balance: per-channel gain, exposure and gamma."""
    import tensorflow as tf

    gains = 1.0 + tf.random.uniform([3], -CHANNEL_GAIN, CHANNEL_GAIN)
    exposure = 1.0 + tf.random.uniform([], -EXPOSURE, EXPOSURE)
    gamma = _log_uniform(*GAMMA)
    scaled = tf.clip_by_value(picture * gains * exposure / 255.0, 0.0, 1.0)
    return 255.0 * tf.pow(scaled, gamma)


def blur(picture, sigma):
    """A Gaussian blur of ``sigma`` pixels (a 7-tap separable kernel, edges reflected)."""
    import tensorflow as tf

    taps = tf.range(-3.0, 4.0)
    kernel = tf.exp(-(taps**2) / (2.0 * sigma**2))
    kernel = kernel / tf.reduce_sum(kernel)
    padded = tf.pad(picture[None], [[0, 0], [3, 3], [3, 3], [0, 0]], mode="REFLECT")
    vertical = tf.tile(tf.reshape(kernel, [7, 1, 1, 1]), [1, 1, 3, 1])
    horizontal = tf.tile(tf.reshape(kernel, [1, 7, 1, 1]), [1, 1, 3, 1])
    out = tf.nn.depthwise_conv2d(padded, vertical, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, horizontal, [1, 1, 1, 1], "VALID")
    return out[0]


def soften(picture, scale):
    """Less detail, as from a lower-resolution sensor: down by ``scale``, then up to the size again."""
    import tensorflow as tf

    shape = tf.shape(picture)
    height, width = shape[0], shape[1]
    small = _resize(picture, tf.cast(tf.cast(height, tf.float32) * scale, tf.int32),
                    tf.cast(tf.cast(width, tf.float32) * scale, tf.int32))  # fmt: skip
    return tf.image.resize(small, tf.stack([height, width]), method="bilinear")


def jpeg(picture):
    import tensorflow as tf

    encoded = tf.cast(tf.clip_by_value(tf.round(picture), 0, 255), tf.uint8)
    compressed = tf.image.random_jpeg_quality(encoded, *JPEG_QUALITY)
    return tf.cast(compressed, tf.float32)


def reframe(picture):
    """One training picture (H, W, 3) float32 0..255 at the training scale, as another device
    might show it; the same size back."""
    import tensorflow as tf

    zoomed_out = tf.constant(False)
    if_zoom = _chance(P_ZOOM)
    factor = tf.where(if_zoom, _log_uniform(*ZOOM_RANGE), 1.0)
    picture = tf.cond(if_zoom, lambda: zoom(picture, factor), lambda: picture)
    zoomed_out = if_zoom & (factor < 1.0)
    picture = tf.cond(_chance(P_SHIFT), lambda: shift(picture), lambda: picture)
    picture = tf.cond(_chance(P_ASPECT), lambda: stretch(picture, _log_uniform(*ASPECT_RANGE)), lambda: picture)
    wants_vignette = tf.where(zoomed_out, _chance(P_VIGNETTE_WHEN_ZOOMED_OUT), _chance(P_VIGNETTE))
    picture = tf.cond(wants_vignette, lambda: vignette(picture), lambda: picture)
    picture = tf.cond(_chance(P_COLOUR), lambda: recolour(picture), lambda: picture)
    sigma = tf.random.uniform([], *BLUR_SIGMA)
    picture = tf.cond(_chance(P_BLUR), lambda: blur(picture, sigma), lambda: picture)
    scale = tf.random.uniform([], *SOFT_SCALE)
    picture = tf.cond(_chance(P_SOFT), lambda: soften(picture, scale), lambda: picture)
    picture = tf.cond(_chance(P_JPEG), lambda: jpeg(picture), lambda: picture)
    return tf.clip_by_value(picture, 0.0, 255.0)


def to_input(picture, input_size: tuple[int, int], geometry: str):
    """A training-scale picture to the model's input, as training.preprocessing's geometries do
    (bilinear, antialiased: Pillow's resize filter, in TensorFlow)."""
    import tensorflow as tf

    height, width = input_size
    if geometry == "squash":
        return tf.image.resize(picture, [height, width], method="bilinear", antialias=True)
    if geometry == "centre_crop":
        shape = tf.shape(picture)
        h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        ratio = width / height
        crop_w = tf.cast(tf.minimum(w, h * ratio), tf.int32)
        crop_h = tf.cast(tf.minimum(h, w / ratio), tf.int32)
        cropped = tf.image.resize_with_crop_or_pad(picture, crop_h, crop_w)
        return tf.image.resize(cropped, [height, width], method="bilinear", antialias=True)
    if geometry == "pad":
        shape = tf.shape(picture)
        h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        ratio = width / height
        padded_w = tf.cast(tf.round(tf.maximum(w, h * ratio)), tf.int32)
        padded_h = tf.cast(tf.round(tf.maximum(h, w / ratio)), tf.int32)
        padded = tf.image.resize_with_crop_or_pad(picture, padded_h, padded_w)  # zeros: black bands
        return tf.image.resize(padded, [height, width], method="bilinear", antialias=True)
    raise ValueError(f"unknown input geometry {geometry!r}")
