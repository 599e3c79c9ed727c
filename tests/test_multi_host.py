"""Nothing relies on a shared disk: the web side (this process), a real inference worker and a real training
worker, each with its own empty local folders, share only the database, Redis and an S3-compatible server
(moto's, a separate process over HTTP on 127.0.0.1).

The workers consume queues of their own (inference-s3, training-s3), so that the suite's other workers
(conftest's celery_worker, training_worker, on the local disk) never take these tests' tasks.
"""

from __future__ import annotations

import json
import shutil

import pytest

from classifier.model_store import publish_version
from classifier.models import ModelVersion, Prediction
from classifier.sweeper import requeue_stale_predictions
from tests.conftest import TRAINING_WORKER_GATE, _worker_process, media_files, token_client, wait_for
from tests.factories import make_labelled_dataset
from tests.images import upload
from tests.object_store import storages_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROUTES = {
    "worker.tasks.predict": {"queue": "inference-s3"},
    "worker.tasks.sweep": {"queue": "inference-s3"},
    "worker.tasks.retrain": {"queue": "training-s3"},
}


@pytest.fixture(scope="module")
def store(s3_server):
    return s3_server


@pytest.fixture(scope="module")
def routed_apart():
    from lesionsite.celery import app

    before = app.conf.task_routes
    app.conf.update(task_routes=ROUTES)
    yield
    app.conf.update(task_routes=before)


def host_folders(tmp_path_factory, host: str) -> dict[str, str]:
    """A host's own local folders, all empty: what it keeps there is its own."""
    return {name: str(tmp_path_factory.mktemp(f"{host}-{name.lower()}"))
            for name in ("MEDIA_ROOT", "TRAINED_MODEL_ROOT", "MODEL_CACHE_DIR")}  # fmt: skip


@pytest.fixture(scope="module")
def inference_host(store, routed_apart, django_db_setup, django_db_blocker, tiny_model_root, tmp_path_factory):
    folders = host_folders(tmp_path_factory, "inference-host")
    roots = (tiny_model_root, folders["TRAINED_MODEL_ROOT"])
    with _worker_process("inference-s3", django_db_blocker, roots, tmp_path_factory,
                         {**store.worker_env(), **folders}) as worker:  # fmt: skip
        worker.folders = folders
        yield worker


@pytest.fixture(scope="module")
def training_host(store, routed_apart, django_db_setup, django_db_blocker, tiny_model_root, tmp_path_factory):
    folders = host_folders(tmp_path_factory, "training-host")
    roots = (tiny_model_root, folders["TRAINED_MODEL_ROOT"])
    with _worker_process("training-s3", django_db_blocker, roots, tmp_path_factory,
                         {**store.worker_env(), **folders, **TRAINING_WORKER_GATE}) as worker:  # fmt: skip
        worker.folders = folders
        yield worker


@pytest.fixture
def web_host(store, settings):
    """This process, as the web host: the same store, its own (empty) MEDIA_ROOT and TRAINED_MODEL_ROOT."""
    settings.STORAGES = storages_for(store.url)
    settings.MODEL_VERSIONS_IN_STORE = True
    yield store
    store.empty()


def files_under(folder: str) -> list[str]:
    from pathlib import Path

    return sorted(str(path.relative_to(folder)) for path in Path(folder).rglob("*") if path.is_file())


def finished(client, url):
    body = client.get(url).json()
    return body if body["status"] in ("done", "failed") else None


def classified(client, name: str, seed: int) -> dict:
    response = client.post("/api/v1/images/", {"file": [upload(name, seed=seed)]}, format="multipart")
    assert response.status_code == 201, response.content
    return wait_for(lambda: finished(client, response.json()["images"][0]["prediction"]["url"]), timeout=120)


def test_web_workers_and_trainer_with_their_own_empty_disks_upload_retrain_and_serve_through_the_store(
    web_host, inference_host, training_host, admin_user, owner, owner_api, active_tiny_model, settings
):
    settings.TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = 1  # as the training worker runs (TRAINING_WORKER_GATE)

    first = classified(owner_api, "first.png", seed=1)
    assert (first["status"], first["model_version"]) == ("done", "tiny-v1"), inference_host.log()[-3000:]

    make_labelled_dataset(owner, images_per_lesion=1)  # written by the web side, read by the trainer
    admin_api = token_client(admin_user)
    job_id = admin_api.post("/api/v1/training-jobs/", {"epochs": 1}, format="json").json()["id"]
    job = wait_for(lambda: (b := admin_api.get(f"/api/v1/training-jobs/{job_id}/").json())["status"]
                   in ("succeeded", "failed", "cancelled") and b, timeout=240, interval=0.5)  # fmt: skip
    assert job["status"] == "succeeded", f"{job['error']}\n{training_host.log()[-3000:]}"
    new_version = ModelVersion.objects.get(name=job["result_version"])
    assert new_version.is_active and set(new_version.card["files"]) >= {"model.keras", "model.tflite"}
    stored = web_host.keys(f"site/model-versions/{new_version.directory}/")
    assert f"site/model-versions/{new_version.directory}/card.json" in stored

    after = classified(owner_api, "after.png", seed=2)

    assert (after["status"], after["model_version"]) == ("done", new_version.name), inference_host.log()[-3000:]
    cache = inference_host.folders["MODEL_CACHE_DIR"]
    assert f"{new_version.directory}/model.keras" in files_under(cache)  # fetched, checked, then loaded
    assert files_under(inference_host.folders["TRAINED_MODEL_ROOT"]) == []
    assert f"{new_version.directory}/model.keras" in files_under(training_host.folders["TRAINED_MODEL_ROOT"])
    # No picture on any local disk: each is in the store alone.
    for host in (inference_host, training_host):
        assert files_under(host.folders["MEDIA_ROOT"]) == []
    assert media_files() == [] and list(settings.TRAINED_MODEL_ROOT.iterdir()) == []
    assert any(key.startswith("site/images/") for key in web_host.keys())


def test_a_worker_never_serves_a_version_whose_file_was_changed_in_the_bucket_and_retries_once_it_is_right(
    web_host, inference_host, owner_api, active_tiny_model, tiny_model_root, tmp_path, settings
):
    folder = tmp_path / "tiny-tampered"
    shutil.copytree(tiny_model_root / "tiny-v1", folder)
    (folder / "card.json").write_text(
        json.dumps(json.loads((folder / "card.json").read_text()) | {"version": folder.name})
    )
    card = publish_version(folder)
    version = ModelVersion.objects.create(name=folder.name, directory=folder.name, root="trained", card=card,
                                          malignant_threshold=0.5)  # fmt: skip
    version.activate()
    key = f"site/model-versions/{folder.name}/model.keras"
    good = web_host.read(key)
    web_host.write(key, good[:-1000])  # a partial upload, say

    response = owner_api.post("/api/v1/images/", {"file": [upload("waits.png", seed=3)]}, format="multipart")
    prediction_id = response.json()["images"][0]["prediction"]["id"]
    waiting = wait_for(lambda: (p := Prediction.objects.get(pk=prediction_id)).error and p, timeout=120)
    assert (waiting.status, waiting.attempts) == ("queued", 1)

    assert "does not match the SHA-256 its card lists" in waiting.error and waiting.probabilities is None
    assert "does not match the SHA-256" in inference_host.log()
    cached = files_under(inference_host.folders["MODEL_CACHE_DIR"])  # the other test's version may be there
    assert not [name for name in cached if name.startswith((folder.name, ".partial"))]  # nothing of the bad download

    web_host.write(key, good)
    assert requeue_stale_predictions(queued_for=0, running_for=3600) == [prediction_id]  # what beat's sweep does
    done = wait_for(lambda: (p := Prediction.objects.get(pk=prediction_id)).status in ("done", "failed") and p,
                    timeout=120)  # fmt: skip
    assert (done.status, done.model_version, done.error) == ("done", version, ""), inference_host.log()[-3000:]
