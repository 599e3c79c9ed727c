"""Site-trained versions in the object store: put there with each file's SHA-256, fetched and checked by a
worker that lacks them, never served from a download that fails its check."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from classifier.health import check_model
from classifier.model_store import publish_version
from classifier.models import ModelVersion, Prediction
from classifier.registry import register_model_versions
from tests.factories import make_prediction
from tests.object_store import free_port, storages_for
from worker.inference import run_predictions
from worker.model_fetch import ModelFetchError, local_folder

pytestmark = pytest.mark.django_db
VERSION = "tiny-in-store"


@pytest.fixture
def in_store(in_store, settings, tmp_path):
    """The bucket, with model versions kept in it and a worker's empty model cache."""
    settings.MODEL_VERSIONS_IN_STORE = True
    settings.MODEL_CACHE_DIR = tmp_path / "model-cache"
    return in_store


@pytest.fixture
def published(in_store, tiny_model_root, tmp_path) -> dict:
    """tiny-v1 renamed, trained "on another host": put in the store, its folder gone from this one."""
    folder = tmp_path / "trainer-host" / VERSION
    shutil.copytree(tiny_model_root / "tiny-v1", folder)
    (folder / "report").mkdir()
    (folder / "report" / "confusion.txt").write_text("a file in a sub-folder\n")
    card = json.loads((folder / "card.json").read_text()) | {"version": VERSION}
    (folder / "card.json").write_text(json.dumps(card))
    card = publish_version(folder)
    shutil.rmtree(folder)
    return card


@pytest.fixture
def active_stored(published, settings, tiny_model_root) -> ModelVersion:
    settings.MODEL_ROOT = tiny_model_root
    version = ModelVersion.objects.create(name=VERSION, directory=VERSION, root="trained", card=published,
                                          malignant_threshold=0.5)  # fmt: skip
    version.activate()
    return version


def test_a_published_version_has_every_file_in_the_store_and_their_sha256_in_its_card(in_store, published):
    keys = in_store.keys(f"site/model-versions/{VERSION}/")
    files = {key.removeprefix(f"site/model-versions/{VERSION}/") for key in keys}

    assert files == {*published["files"], "card.json"} and "report/confusion.txt" in files
    for name, listed in published["files"].items():
        data = in_store.read(f"site/model-versions/{VERSION}/{name}")
        assert listed == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert json.loads(in_store.read(f"site/model-versions/{VERSION}/card.json")) == published


def test_registration_finds_a_version_that_is_only_in_the_store(in_store, published, settings, tmp_path):
    settings.MODEL_ROOT = tmp_path / "no-shipped-versions"

    created = register_model_versions()

    assert [version.name for version in created] == [VERSION]
    version = ModelVersion.objects.get(name=VERSION)
    assert (version.root, version.directory, version.card) == ("trained", VERSION, published)
    assert version.is_active  # the only one: activated as the newest
    assert check_model() == {"ok": True, "active_version": VERSION}  # /healthz on a web host without the files


def test_a_worker_without_the_version_fetches_checks_and_serves_it(active_stored, owner, settings):
    prediction = make_prediction(owner)

    assert run_predictions([prediction.pk], task_id="task-1") == [prediction.pk]

    prediction.refresh_from_db()
    assert (prediction.status, prediction.model_version) == ("done", active_stored)
    cached = settings.MODEL_CACHE_DIR / VERSION
    assert (cached / "model.keras").is_file() and (cached / "report" / "confusion.txt").is_file()
    assert [path.name for path in settings.MODEL_CACHE_DIR.iterdir()] == [VERSION]  # no partial folder left
    assert list(settings.TRAINED_MODEL_ROOT.iterdir()) == []


def test_a_fetched_version_is_read_from_the_cache_afterwards(active_stored, in_store):
    first = local_folder(active_stored)
    in_store.empty()  # the store could even be gone now

    assert local_folder(active_stored) == first


def cut_short(data: bytes) -> bytes:
    return data[: len(data) // 2]


def changed(data: bytes) -> bytes:
    return data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]


@pytest.mark.parametrize("spoil", [changed, cut_short], ids=["changed", "cut short"])
def test_a_file_that_fails_its_check_is_never_served_and_the_prediction_waits_for_a_retry(
    active_stored, in_store, owner, owner_web, settings, spoil
):
    key = f"site/model-versions/{VERSION}/model.keras"
    good = in_store.read(key)
    in_store.write(key, spoil(good))
    prediction = make_prediction(owner)

    assert run_predictions([prediction.pk], task_id="task-1") == []

    prediction.refresh_from_db()
    assert prediction.status == "queued" and prediction.model_version is None
    assert prediction.error == (
        f"Model version {VERSION}'s file model.keras in the object store does not match the SHA-256 its card "
        "lists (changed or cut short): it is not served, and the download is tried again."
    )
    assert not settings.MODEL_CACHE_DIR.exists() or list(settings.MODEL_CACHE_DIR.iterdir()) == []
    page = owner_web.get(prediction.get_absolute_url()).content.decode()
    assert "in the object store does not match the SHA-256 its card lists" in page  # why it is still waiting

    in_store.write(key, good)  # the operator puts the right file back; the sweep sends the prediction again
    assert run_predictions([prediction.pk], task_id="task-2") == [prediction.pk]
    assert Prediction.objects.get(pk=prediction.pk).model_version == active_stored


def test_a_card_changed_in_the_bucket_does_not_make_a_changed_file_pass(active_stored, in_store):
    folder = f"site/model-versions/{VERSION}"
    spoiled = changed(in_store.read(f"{folder}/model.keras"))
    in_store.write(f"{folder}/model.keras", spoiled)
    card = json.loads(in_store.read(f"{folder}/card.json"))
    card["files"]["model.keras"] = {"sha256": hashlib.sha256(spoiled).hexdigest(), "bytes": len(spoiled)}
    in_store.write(f"{folder}/card.json", json.dumps(card).encode())

    with pytest.raises(ModelFetchError, match="does not match the SHA-256"):
        local_folder(active_stored)  # checked against the registered card, in the database


def test_a_version_without_a_file_list_is_not_fetched(active_stored):
    active_stored.card = {key: value for key, value in active_stored.card.items() if key != "files"}
    active_stored.save()

    with pytest.raises(ModelFetchError, match="its card lists no files with their SHA-256"):
        local_folder(active_stored)


def test_a_store_unreachable_during_the_download_leaves_the_prediction_queued_with_the_reason(
    active_stored, owner, settings
):
    prediction = make_prediction(owner)
    settings.STORAGES = storages_for(f"s3://lesionsite-test/site?endpoint_url=http://127.0.0.1:{free_port()}")

    assert run_predictions([prediction.pk], task_id="task-1") == []

    prediction.refresh_from_db()
    assert prediction.status == "queued"
    assert prediction.error.startswith(f"Model version {VERSION} could not be fetched from the object store")
    assert prediction.error.endswith("it is tried again.")


def test_registration_never_replaces_a_registered_card_with_the_one_in_the_bucket(in_store, published, settings,
                                                                                   tmp_path):  # fmt: skip
    settings.MODEL_ROOT = tmp_path / "no-shipped-versions"
    register_model_versions()
    key = f"site/model-versions/{VERSION}/card.json"
    in_store.write(key, json.dumps(published | {"files": {}, "thresholds": {"malignant": 0.01}}).encode())

    register_model_versions()

    assert ModelVersion.objects.get(name=VERSION).card == published
