"""A small client of the REST API for the benchmarks and the load test.

Only what a REST client does: upload over multipart, poll a prediction. Every
call has a timeout, so a hung server ends a run instead of hanging it.
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
import requests
from PIL import Image

REQUEST_TIMEOUT = 120  # seconds; a 100-file upload on a busy 2-core machine takes a few


def jpeg_bytes(seed: int, size: tuple[int, int] = (200, 150)) -> bytes:
    """A 200x150 JPEG, different for every seed (so no upload is deduplicated).

    Smooth colour blobs rather than pure noise: a photo-like file size and decode cost.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(size[1] // 10, size[0] // 10, 3), dtype=np.uint8)
    image = Image.fromarray(coarse, "RGB").resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Api:
    """One client's HTTP session (keep-alive); use one per thread."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def upload(self, files: list[tuple[str, bytes]]) -> tuple[int, dict | None]:
        """POST the files as one request; (status code, JSON body or None)."""
        response = self.session.post(
            f"{self.base_url}/api/v1/images/",
            files=[("file", (name, data, "image/jpeg")) for name, data in files],
            timeout=REQUEST_TIMEOUT,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body

    def prediction_status(self, prediction_id: int) -> tuple[int, str | None]:
        response = self.session.get(f"{self.base_url}/api/v1/predictions/{prediction_id}/", timeout=REQUEST_TIMEOUT)
        return response.status_code, (response.json().get("status") if response.ok else None)

    def close(self) -> None:
        self.session.close()


def get_token(base_url: str, username: str, password: str) -> str:
    response = requests.post(
        f"{base_url.rstrip('/')}/api/v1/auth/token/",
        data={"username": username, "password": password},
        timeout=REQUEST_TIMEOUT,
    )
    response.raise_for_status()
    return response.json()["token"]


def prediction_ids(body: dict | None) -> list[int]:
    return [item["prediction"]["id"] for item in (body or {}).get("images", [])]


def percentiles(values: list[float]) -> dict:
    """p50 / p95 / max of a list of numbers (milliseconds), or Nones when empty."""
    if not values:
        return {"p50": None, "p95": None, "max": None, "n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(p95, 1),
        "max": round(ordered[-1], 1),
        "n": len(ordered),
    }


def wait_until(predicate, timeout: float, interval: float):
    """Call predicate() until it is truthy or the time is up; return its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
