"""A real local stack for the benchmarks: gunicorn, Celery inference workers, Redis, PostgreSQL.

Everything listens on loopback. The database is a dedicated PostgreSQL database
(recreated for each run), the broker a dedicated Redis database number, media and
model copies live in a temporary folder: a benchmark never touches `make run`'s
data or the shipped ``models/`` folder. Every process started here runs in its
own process group and is stopped (SIGTERM, then SIGKILL) when the ``with`` ends,
also on errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "lesionsite_bench")
BENCH_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")  # not make run's /0, tests' /15
BENCH_USER = ("bench-clinician", "bench-clinician-password-1")
START_SECONDS = 120  # gunicorn and a Celery worker are up in ~5 s; a cold model load adds a few


@dataclass
class BenchEnvironment:
    """What every stack of one run shares: database, broker, media, the model version, a token."""

    workdir: Path
    env: dict[str, str]
    version: str
    token: str


def newest_model_dir(model_root: Path = REPO_ROOT / "models") -> Path:
    from training.card import find_version_dirs

    versions = find_version_dirs(model_root)
    if not versions:
        raise SystemExit(f"No model version (model.keras + card.json) under {model_root}: nothing to benchmark.")
    return max(versions, key=lambda path: (path / "model.keras").stat().st_mtime)


def prepare(model_dir: Path, workdir: Path, litert: bool = True) -> BenchEnvironment:
    """A fresh bench database with the model version registered and a clinician's token.

    Sets this process's environment and calls django.setup(): call it once per process.
    """
    model_root = workdir / "models"
    version_dir = model_root / model_dir.name
    shutil.copytree(model_dir, version_dir, ignore=shutil.ignore_patterns("*.partial"))
    if litert and not (version_dir / "model.tflite").is_file():
        # In a child process, so this process never imports TensorFlow.
        subprocess.run([sys.executable, "-m", "training.export_litert", str(version_dir)], cwd=REPO_ROOT, check=True)

    database_url = recreate_database()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lesionsite.settings",
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": "60",  # as docker-compose runs it
        "CELERY_BROKER_URL": BENCH_BROKER_URL,
        "MEDIA_ROOT": str(workdir / "media"),
        "MODEL_ROOT": str(model_root),
        "LESIONSITE_VAR_DIR": str(workdir / "var"),
        "UPLOAD_RATE_LIMIT": "",  # the benchmark is one user uploading hundreds of images
        "SECURE_SSL_REDIRECT": "0",  # plain http on loopback: no TLS proxy in front
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from classifier.models import ApiToken, Clinic, ModelVersion
    from lesionsite.celery import app

    call_command("migrate", verbosity=0)  # registers MODEL_ROOT's version and activates it
    call_command("register_models", verbosity=0)
    version = ModelVersion.active()
    if version is None:
        raise RuntimeError(f"The model version in {version_dir} was not registered; is its card valid?")
    user = get_user_model().objects.create_user(*BENCH_USER)
    Clinic.objects.create(name="Bench clinic").add_member(user, "manager")  # uploads go into a clinic
    _, token = ApiToken.objects.issue(user, name="bench")
    with app.connection_for_write() as conn:  # drop what an interrupted run left in the queue
        conn.default_channel.queue_purge("inference")
    return BenchEnvironment(workdir=workdir, env=env, version=version.name, token=token)


def recreate_database() -> str:
    """Drop and create the bench database on the local PostgreSQL; return its URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DATABASE}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """gunicorn + `celery worker -Q inference -c N` for one backend, on a bench environment."""

    bench: BenchEnvironment
    backend: str
    workers: int
    threads: int
    web_workers: int = 2  # one per core
    web_threads: int = 4  # uploads wait on PostgreSQL and Redis as much as on the CPU
    processes: list[subprocess.Popen] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return self.bench.token

    @property
    def node(self) -> str:
        return f"bench-inference-{os.getpid()}@localhost"

    @property
    def worker_log(self) -> Path:
        return self.bench.workdir / f"worker-{self.backend}-{self.workers}.log"

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        env = {**self.bench.env, "INFERENCE_BACKEND": self.backend, "INFERENCE_THREADS": str(self.threads)}
        self.port = free_port()
        web = [sys.executable, "-m", "gunicorn", "lesionsite.wsgi", "--bind", f"127.0.0.1:{self.port}",
               "--workers", str(self.web_workers), "--worker-class", "gthread", "--threads", str(self.web_threads),
               "--timeout", "120"]  # fmt: skip
        worker = [sys.executable, "-m", "celery", "-A", "lesionsite", "worker", "-Q", "inference",
                  "-c", str(self.workers), "-n", self.node, "--loglevel", "INFO",
                  "--without-gossip", "--without-mingle"]  # fmt: skip
        for command, log in ((web, f"web-{self.backend}-{self.workers}.log"), (worker, self.worker_log.name)):
            with open(self.bench.workdir / log, "ab") as out:
                self.processes.append(
                    subprocess.Popen(
                        command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        self._wait_for_web()
        self._wait_for_worker()

    def _wait_for_web(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base_url}/login/", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer on {self.base_url} within {START_SECONDS} s")

    def _wait_for_worker(self) -> None:
        from lesionsite.celery import app

        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            self._check_alive()
            if app.control.ping(destination=[self.node], timeout=1.0):
                return
        raise RuntimeError(f"the Celery worker did not answer within {START_SECONDS} s:\n{self.worker_log.read_text()}")

    def _check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(process.args[2:4])} exited with code {process.returncode}")

    def models_loaded(self) -> int:
        """How many pool processes have loaded the model (the cache logs each load)."""
        return self.worker_log.read_text(errors="replace").count("Loaded model version")

    def worker_memory_mb(self) -> dict:
        """Resident memory of the Celery main process and of each pool process, in MB."""
        main = self.processes[1].pid
        return {"main": rss_mb(main), "pool": [rss_mb(pid) for pid in child_pids(main)]}

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)  # its own group: the pool processes too
        for process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()


def rss_mb(pid: int) -> float | None:
    """Resident set size from /proc (Linux), in MB; None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def child_pids(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (field 2) may hold spaces; the parent id is the 2nd field after it.
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                children.append(int(stat.parent.name))
    return sorted(children)


@contextlib.contextmanager
def bench_stack(backend: str = "keras", workers: int = 2, model_dir: Path | None = None):
    """A whole bench stack (for the load test's --start-stack), removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="lesionsite-bench-"))
    try:
        bench = prepare(model_dir or newest_model_dir(), workdir, litert=backend == "litert")
        with Stack(bench, backend=backend, workers=workers, threads=max(1, (os.cpu_count() or 1) // workers)) as stack:
            yield stack
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
