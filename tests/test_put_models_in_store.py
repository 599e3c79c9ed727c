"""manage.py put_models_in_store: a site moving to object storage puts its trained versions there once."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from classifier.models import ModelVersion
from classifier.registry import register_model_versions
from tests.object_store import moto_server, storages_for

pytestmark = pytest.mark.django_db


def run() -> str:
    out = io.StringIO()
    call_command("put_models_in_store", stdout=out)
    return out.getvalue()


@pytest.fixture
def trained_here(settings, tiny_model_root, tmp_path) -> ModelVersion:
    folder = settings.TRAINED_MODEL_ROOT / "site-v1"
    shutil.copytree(tiny_model_root / "tiny-v1", folder)
    (folder / "card.json").write_text(
        json.dumps(json.loads((folder / "card.json").read_text()) | {"version": "site-v1"})
    )
    settings.MODEL_ROOT = tmp_path / "no-shipped-versions"
    register_model_versions()
    return ModelVersion.objects.get(name="site-v1")


def test_it_puts_each_trained_version_there_once_and_the_registered_card_lists_its_files(
    trained_here, settings, tmp_path
):
    with moto_server(tmp_path / "moto.log") as store:
        settings.STORAGES = storages_for(store.url)
        settings.MODEL_VERSIONS_IN_STORE = True

        assert run() == "site-v1: put in the store (1 file and its card)\n"
        assert run() == "site-v1: already in the store\n"

        trained_here.refresh_from_db()
        assert set(trained_here.card["files"]) == {"model.keras"}
        assert "site/model-versions/site-v1/model.keras" in store.keys()


def test_it_refuses_without_an_object_store(trained_here):
    with pytest.raises(CommandError, match="set STORAGE_URL"):
        run()
