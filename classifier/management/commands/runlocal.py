from __future__ import annotations

import signal
import subprocess
import sys
import time

from celery import current_app as app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from classifier.management.commands.create_demo_users import DEMO_ACCOUNTS, login_box
from classifier.management.local_services import broker_address, is_listening, start_redis, stop

# After a Ctrl-C, how long the children (who got it too) may take to stop on their own
# before they are sent SIGTERM: the Celery workers' warm shutdown takes ~1-2 s.
CHILDREN_STOPPING_SECONDS = 5.0
# How long start-up may take before the address is printed anyway (a first run compiles a lot).
READY_WAIT_SECONDS = 60.0


class Command(BaseCommand):
    help = (
        "Run the whole site locally: a Redis (only if none listens on the broker's port), "
        "a Celery inference worker (which also delivers webhooks), a training worker, Celery beat and the web server. "
        "Ctrl-C stops everything it started."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--workers", type=int, default=1, help="Inference worker processes.")

    def handle(self, *args, addrport: str, workers: int, **options):
        children: list[subprocess.Popen] = []
        exiting_seconds = 0.0
        host, port = broker_address(settings.CELERY_BROKER_URL)
        try:
            if is_listening(host, port):
                self.stdout.write(f"Using the Redis already listening on {host}:{port}.")
            elif host not in ("127.0.0.1", "localhost", "::1"):
                raise CommandError(f"No Redis answers at {host}:{port}, and it is not on this machine to start.")
            else:
                children.append(start_redis(port, settings.VAR_DIR / "redis"))
                self.stdout.write(f"Started Redis on 127.0.0.1:{port} (stopped again on Ctrl-C).")

            celery = [sys.executable, "-m", "celery", "-A", "lesionsite"]
            processes = [
                # Locally the inference worker delivers webhooks too: one process fewer on a laptop
                # (docker-compose gives them a worker of their own).
                [*celery, "worker", "-Q", "inference,webhooks", "-c", str(workers), "-n", "inference@%h", "-l", "INFO"],
                # Retraining has its own worker (one process), so it never slows inference down.
                [*celery, "worker", "-Q", "training", "-c", "1", "-n", "training@%h", "-l", "INFO"],
                # Beat sends the periodic sweeps: stuck predictions, and webhook deliveries that are due.
                [*celery, "beat", "-l", "WARNING"],
                [sys.executable, "manage.py", "runserver", addrport, "--noreload"],
            ]
            children.extend(subprocess.Popen(command) for command in processes)
            self.stdout.write(f"lesionsite is starting at http://{addrport}/ …")
            self._announce_when_ready(addrport, children)
            self._wait(children)
        except KeyboardInterrupt as interrupt:
            self.stdout.write("\nStopping…")
            if interrupt.args == (signal.SIGINT,):
                # A terminal's Ctrl-C reaches the children as well: let them finish stopping.
                exiting_seconds = CHILDREN_STOPPING_SECONDS
        finally:
            stop(children, exiting_seconds=exiting_seconds)

    def _announce_when_ready(self, addrport: str, children: list[subprocess.Popen]) -> None:
        """Print the address and the demo accounts last, once the web server answers and the
        workers have printed their banners, so they are not lost above ~70 lines of start-up logs."""
        host, _, port = addrport.rpartition(":")
        deadline = time.monotonic() + READY_WAIT_SECONDS
        while time.monotonic() < deadline and not is_listening(host or "127.0.0.1", int(port)):
            if any(child.poll() is not None for child in children):
                return  # _wait reports which one exited
            time.sleep(0.25)
        _wait_for_workers(deadline)
        url = f"http://{addrport}/"
        demo = get_user_model().objects.filter(username__in=[account.username for account in DEMO_ACCOUNTS]).exists()
        self.stdout.write(self.style.SUCCESS(login_box(url) if demo else f"lesionsite is running at {url}"))

    def _wait(self, children: list[subprocess.Popen]) -> None:
        # Ctrl-C, and SIGTERM from a process manager, stop everything. SIGINT is set
        # explicitly: a shell starting us in the background would have it ignored.
        signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        while True:
            for child in children:
                if child.poll() is not None:
                    raise CommandError(f"{' '.join(map(str, child.args[:3]))} exited with code {child.returncode}")
            time.sleep(0.5)


def _wait_for_workers(deadline: float) -> None:
    """Until both workers answer a ping (their banners are printed by then), or the deadline."""
    while time.monotonic() < deadline:
        try:
            if len(app.control.ping(timeout=1.0)) >= 2:
                return
        except Exception:  # the broker may still be starting
            time.sleep(0.5)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(signum)
