"""Shared fixtures: role-named users, isolated storage, a tiny real model, a real Celery worker."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test.utils import override_settings
from rest_framework.test import APIClient

from tests.tiny_model import save_tiny_version

REPO_ROOT = Path(__file__).resolve().parent.parent
# Tests publish to their own Redis database, so a local `make run` worker on the
# default database never steals their tasks.
TEST_BROKER_URL = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
# ...and their own key prefix, so two test runs sharing that Redis never take each other's tasks.
TEST_BROKER_KEY_PREFIX = f"lesionsite-test-{os.getpid()}:"
WORKER_START_SECONDS = 90


@pytest.fixture(scope="session", autouse=True)
def plain_http():
    """The suite's clients and live servers speak plain http, as `make run` does (DEBUG=1 there)."""
    with override_settings(SECURE_SSL_REDIRECT=False, SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False):
        yield


@pytest.fixture(scope="session", autouse=True)
def isolated_storage(tmp_path_factory):
    """Uploads go to a temporary MEDIA_ROOT; MODEL_ROOT starts empty (tests add versions)."""
    media = tmp_path_factory.mktemp("media")
    models = tmp_path_factory.mktemp("empty-model-root")
    with override_settings(MEDIA_ROOT=media, MODEL_ROOT=models):
        yield


@pytest.fixture(scope="session")
def workers_trained_model_root(tmp_path_factory) -> Path:
    """Where the test workers' training jobs write versions (and the inference worker finds them)."""
    return tmp_path_factory.mktemp("workers-trained-model-root")


@pytest.fixture(autouse=True)
def empty_trained_model_root(tmp_path_factory):
    """Each test starts with no site-trained versions, whatever the workers' jobs wrote before."""
    with override_settings(TRAINED_MODEL_ROOT=tmp_path_factory.mktemp("trained-model-root")):
        yield


@pytest.fixture(autouse=True)
def empty_media_root():
    """Each test starts with no stored files (the database is reset by pytest-django)."""
    yield
    for child in Path(settings.MEDIA_ROOT).iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


# The people of the access rules: the owner and their teammate and manager work in one clinic;
# the outsider in another (and must see nothing of the first); an anonymous client has no account.


@pytest.fixture(autouse=True)
def empty_cache():
    """The audit log's repeat window lives in the cache: no test inherits another's."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clinic(db):
    """The owner's clinic."""
    from classifier.models import Clinic

    return Clinic.objects.create(name="Clinic A")


@pytest.fixture
def other_clinic(db):
    from classifier.models import Clinic

    return Clinic.objects.create(name="Clinic B")


@pytest.fixture
def owner(django_user_model, clinic):
    """A clinician of Clinic A; the tests' uploads are usually theirs."""
    user = django_user_model.objects.create_user("alice", password="alice-password-1")
    clinic.add_member(user, "clinician")
    return user


@pytest.fixture
def teammate(django_user_model, clinic):
    """Another clinician of Clinic A: sees what the owner uploads."""
    user = django_user_model.objects.create_user("carol", password="carol-password-1")
    clinic.add_member(user, "clinician")
    return user


@pytest.fixture
def manager(django_user_model, clinic):
    """Clinic A's manager: manages its members and reads its audit log."""
    user = django_user_model.objects.create_user("mary", password="mary-password-1")
    clinic.add_member(user, "manager")
    return user


@pytest.fixture
def outsider(django_user_model, other_clinic):
    """A clinician of Clinic B: must never see Clinic A's records."""
    user = django_user_model.objects.create_user("bob", password="bob-password-1")
    other_clinic.add_member(user, "clinician")
    return user


def token_client(user) -> APIClient:
    from classifier.tokens import ApiToken  # a model: imported once Django is set up

    client = APIClient()
    _, key = ApiToken.objects.issue(user, name="tests")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def owner_api(owner):
    return token_client(owner)


@pytest.fixture
def outsider_api(outsider):
    return token_client(outsider)


@pytest.fixture
def anonymous_api():
    return APIClient()


@pytest.fixture
def owner_web(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def admin_client(db, admin_user):
    """pytest-django's admin_client (a client of its own), signed in as staff are: with a second factor."""
    from django.test import Client

    from tests.signing_in import verified_login

    return verified_login(Client(), admin_user)


def media_files() -> list[Path]:
    return [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


@pytest.fixture(scope="session")
def tiny_model_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-models")
    save_tiny_version(root, "tiny-v1")
    return root


@pytest.fixture
def active_tiny_model(db, settings, tiny_model_root):
    from classifier.models import ModelVersion
    from classifier.registry import register_model_versions

    settings.MODEL_ROOT = tiny_model_root
    register_model_versions(tiny_model_root)
    version = ModelVersion.objects.get(name="tiny-v1")
    version.activate()
    return version


# --- A real Celery worker process, for integration tests.


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the test database this test process just created."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    if engine.endswith("postgresql"):
        user = settings_dict.get("USER") or ""
        password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
        credentials = f"{user}{password}@" if user else ""
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
        return f"postgres://{credentials}{host}{port}/{settings_dict['NAME']}"
    raise RuntimeError(f"No DATABASE_URL form known for {engine}")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tiny_model_root, workers_trained_model_root, tmp_path_factory):
    """`celery worker -Q inference` as a separate process against the test database."""
    roots = (tiny_model_root, workers_trained_model_root)
    with _worker_process("inference", django_db_blocker, roots, tmp_path_factory) as worker:
        yield worker


# The gate settings the training worker runs with: permissive, so a job on tiny
# random data activates its result; tests of a refusing gate call the job in-process.
# Tests that start a job there set the same minimum in the web process (settings fixture).
TRAINING_WORKER_GATE = {
    "TRAINING_GATE_MAX_BALANCED_ACCURACY_DROP": "1.0",
    "TRAINING_GATE_MIN_MELANOMA_RECALL": "0.0",
    "TRAINING_GATE_MIN_HELD_OUT_PER_CLASS": "1",
}


@pytest.fixture(scope="session")
def training_worker(django_db_setup, django_db_blocker, tiny_model_root, workers_trained_model_root, tmp_path_factory):
    """`celery worker -Q training --concurrency 1`, as the README's run command starts it."""
    roots = (tiny_model_root, workers_trained_model_root)
    with _worker_process("training", django_db_blocker, roots, tmp_path_factory, TRAINING_WORKER_GATE) as worker:
        yield worker


# Redis redelivers a task whose worker vanished after this many seconds (production: 300).
TEST_VISIBILITY_TIMEOUT = "8"


@contextlib.contextmanager
def _worker_process(queue, django_db_blocker, roots, tmp_path_factory, extra_env=None):
    model_root, trained_model_root = roots
    from django.db import connection

    from lesionsite.celery import app

    app.conf.broker_url = TEST_BROKER_URL
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "global_keyprefix": TEST_BROKER_KEY_PREFIX,
    }
    # A connection and producer pool made earlier in the session (a /healthz ping of the
    # default broker, say) would keep pings and tasks going there, never to this worker:
    # drop them, as Celery itself does after a fork.
    app._after_fork()
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    with app.connection_for_write() as conn:  # drop tasks an interrupted run left in this queue
        conn.default_channel.queue_purge(queue)

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lesionsite.settings",
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": TEST_BROKER_URL,
        "BROKER_KEY_PREFIX": TEST_BROKER_KEY_PREFIX,
        "BROKER_VISIBILITY_TIMEOUT": TEST_VISIBILITY_TIMEOUT,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "MODEL_ROOT": str(model_root),
        "TRAINED_MODEL_ROOT": str(trained_model_root),
        "INFERENCE_THREADS": "1",
        **(extra_env or {}),
    }
    worker = WorkerProcess(queue, env, tmp_path_factory.mktemp(f"{queue}-worker") / "worker.log")
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()


class WorkerProcess:
    """A `celery worker` subprocess that a test may kill and start again."""

    def __init__(self, queue: str, env: dict, log_path: Path):
        self.queue, self.env, self.log_path = queue, env, log_path
        self.node = f"test-{queue}-{os.getpid()}@localhost"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from lesionsite.celery import app

        command = [sys.executable, "-m", "celery", "-A", "lesionsite", "worker", "-Q", self.queue,
                   "--concurrency", "1", "--pool", "prefork", "-n", self.node, "--loglevel", "INFO",
                   "--without-gossip", "--without-mingle"]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        _wait_for_worker(app, self.node, self.process, self.log_path)

    def children(self) -> list[int]:
        output = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in output.stdout.split()]

    def kill_hard(self) -> None:
        """SIGKILL the main process and its pool processes at once, as a crashed host would."""
        for pid in [*self.children(), self.process.pid]:
            os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_for_worker(app, node: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + WORKER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited ({process.returncode}):\n{log_path.read_text()}")
        if app.control.ping(destination=[node], timeout=1.0):
            return
    raise RuntimeError(f"celery worker did not answer within {WORKER_START_SECONDS} s:\n{log_path.read_text()}")


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):
    """Poll until predicate() returns something truthy; return it, or fail with the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    assert value, f"condition not met within {timeout} s"
    return value


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One S3-compatible server (moto's, a separate process over HTTP on 127.0.0.1) for the session."""
    from tests.object_store import moto_server

    with moto_server(tmp_path_factory.mktemp("s3") / "moto.log") as store:
        yield store


@pytest.fixture
def in_store(s3_server, settings):
    """The default storage is a bucket on the S3 server, emptied after the test."""
    from tests.object_store import storages_for

    settings.STORAGES = storages_for(s3_server.url)
    yield s3_server
    s3_server.empty()
