"""How to store a camera's JPEG without its metadata: size and time of each way (docs/PERFORMANCE.md).

Generated pictures shaped like a dermatoscope's photo (a smooth skin tone, a darker
blot, a vignette, sensor noise), saved as a camera saves them (JPEG quality 92, 4:2:0,
with EXIF), at 12 and 24 megapixels; then, for each, the time to decode it and:

- ``png``: re-encode the decoded pixels as PNG (what lesionsite does today);
- ``webp_lossless``: re-encode them as lossless WebP (method 0, Pillow's fastest);
- ``jpeg_stripped``: keep the compressed stream, dropping its metadata segments
  (classifier.lib.jpeg_segments: the pixels are bit-identical, no re-encoding).

    python -m bench.picture_storage [--megapixels 12,24] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time

import numpy as np
from PIL import Image

from classifier.lib.jpeg_segments import strip_metadata
from classifier.lib.png import encode_rgb_png

SIZES = {12: (4000, 3000), 24: (6000, 4000)}


def camera_jpeg(size: tuple[int, int], seed: int = 0) -> bytes:
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width * (0.45 + 0.1 * rng.random()), height * (0.45 + 0.1 * rng.random())
    r = np.hypot((x - cx) / (0.25 * width), (y - cy) / (0.22 * height))
    blot = np.clip(1.2 - r, 0, 1)[..., None] * np.array([90, 110, 100], np.float32)
    vignette = np.clip(np.hypot(x - width / 2, y - height / 2) / (0.55 * width), 0, 1)[..., None] ** 4
    skin = np.array([205, 150, 125], np.float32) - blot
    picture = skin * (1 - vignette) + rng.normal(0, 4, (height, width, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x010F] = "DermaCam"
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def timed(function, repeat: int):
    seconds, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return result, statistics.median(seconds)


def measure(data: bytes, repeat: int) -> dict:
    def decode():
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")

    rgb, decode_s = timed(decode, repeat)

    def webp():
        out = io.BytesIO()
        rgb.save(out, format="WEBP", lossless=True, method=0)
        return out.getvalue()

    ways = {
        "png": lambda: encode_rgb_png(np.asarray(rgb)),
        "webp_lossless": webp,
        "jpeg_stripped": lambda: strip_metadata(data),
    }
    result = {"uploaded_bytes": len(data), "decode_s": round(decode_s, 3), "ways": {}}
    for name, way in ways.items():
        stored, seconds = timed(way, repeat)
        result["ways"][name] = {
            "stored_bytes": len(stored),
            "ratio_to_upload": round(len(stored) / len(data), 3),
            "seconds": round(seconds, 3),
        }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", default="12,24", help="comma-separated, of: 12, 24")
    parser.add_argument("--repeat", type=int, default=3, help="median of this many runs")
    args = parser.parse_args(argv)
    report = {"machine": f"{platform.processor() or platform.machine()}", "pictures": {}}
    for megapixels in (int(value) for value in args.megapixels.split(",")):
        report["pictures"][f"{megapixels} MP"] = measure(camera_jpeg(SIZES[megapixels]), args.repeat)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
