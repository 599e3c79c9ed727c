"""A real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright against the live server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Flags for a headless browser in a sandboxed machine with no network beyond loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", "var/screenshots"))


@pytest.fixture(scope="session")
def chromium_browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"Chromium not found at {CHROMIUM}; install it (apt-get install chromium).")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it and runs these tests.")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the
    # tests make between browser steps are still plain synchronous code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium_browser):
    """A fresh page; a test whose pages broke the Content-Security-Policy fails, naming what was refused."""
    context = chromium_browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    refused: list[str] = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    yield page
    context.close()
    assert not refused, refused


def screenshot(page, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, base_url: str, username: str, password: str, landing: str = "/upload/") -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    give_code_if_asked(page, username)
    page.wait_for_url(f"{base_url}{landing}")


def give_code_if_asked(page, username: str) -> None:
    """A user with an authenticator app (tests.signing_in.enrolled_phone) is asked its code after the password."""
    import re

    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.signing_in import code_for

    device = TOTPDevice.objects.filter(user__username=username, confirmed=True).first()
    if device is None:
        return
    page.wait_for_url(re.compile(r"/login/code/"))
    page.get_by_label("Code").fill(code_for(device))
    page.get_by_role("button", name="Continue").click()


def lesion_png(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """A made-up picture that looks like a lesion on skin (for screenshots that read well); seeds differ in bytes."""
    import io

    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    width, height = size
    skin = tuple(int(c) for c in rng.integers([200, 150, 120], [240, 190, 160]))
    picture = Image.new("RGB", size, skin)
    draw = ImageDraw.Draw(picture)
    brown = tuple(int(c) for c in rng.integers([70, 35, 20], [150, 90, 60]))
    rx, ry = width * rng.uniform(0.18, 0.32), height * rng.uniform(0.18, 0.32)
    cx, cy = width / 2 + rng.uniform(-10, 10), height / 2 + rng.uniform(-8, 8)
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=brown)
    picture = picture.filter(ImageFilter.GaussianBlur(3))
    noise = rng.normal(0, 6, (height, width, 3))
    pixels = np.clip(np.asarray(picture, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def drop_files(page, selector: str, files: list[tuple[str, bytes, str]]) -> None:
    """Drag files onto an element as a user would: dragenter, dragover, drop, with a DataTransfer made in the page."""
    import base64

    payload = [{"name": name, "type": kind, "data": base64.b64encode(data).decode()} for name, data, kind in files]
    page.evaluate(
        """([selector, files]) => {
            const target = document.querySelector(selector);
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
                // A fixed date, so dropping the same file twice is recognisably the same file.
                transfer.items.add(new File([bytes], file.name, { type: file.type, lastModified: 1767225600000 }));
            }
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
            }
        }""",
        [selector, payload],
    )


def has_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")


def lesion_image(owner, seed: int, size: tuple[int, int] = (160, 120), **fields):
    """A stored LesionImage whose file is a lesion_png() picture (tests.factories.make_image stores noise)."""
    from django.core.files.base import ContentFile

    from classifier.models import LesionImage
    from tests.factories import make_image

    image = make_image(owner, **fields)
    image.file.save(image.file.name.rsplit("/", 1)[-1], ContentFile(lesion_png(seed, size)), save=False)
    LesionImage.objects.filter(pk=image.pk).update(file=image.file.name, width=size[0], height=size[1])
    image.refresh_from_db()
    return image
