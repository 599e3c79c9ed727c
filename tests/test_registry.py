"""Model versions under MODEL_ROOT are registered, the newest activated, bad ones reported."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from classifier.checks import check_broker, check_model_root
from classifier.models import ModelVersion
from classifier.registry import register_model_versions
from tests.tiny_model import write_card_only

pytestmark = pytest.mark.django_db


def test_it_registers_each_version_and_activates_the_newest(tmp_path):
    write_card_only(tmp_path, "v1", created="2026-01-01T00:00:00Z")
    write_card_only(tmp_path, "v2", created="2026-03-01T00:00:00Z", threshold=0.25)

    created = register_model_versions(tmp_path)

    assert sorted(v.name for v in created) == ["v1", "v2"]
    active = ModelVersion.active()
    assert active.name == "v2" and active.malignant_threshold == 0.25


def test_registering_again_creates_nothing_and_keeps_the_chosen_active_version(tmp_path):
    write_card_only(tmp_path, "v1", created="2026-01-01T00:00:00Z")
    write_card_only(tmp_path, "v2", created="2026-03-01T00:00:00Z")
    register_model_versions(tmp_path)
    ModelVersion.objects.get(name="v1").activate()  # an admin rolled back

    assert register_model_versions(tmp_path) == []
    assert ModelVersion.active().name == "v1"


def test_only_one_version_is_active_at_a_time(tmp_path):
    write_card_only(tmp_path, "v1")
    write_card_only(tmp_path, "v2")
    register_model_versions(tmp_path)
    for version in ModelVersion.objects.all():
        version.activate()
        assert ModelVersion.objects.filter(is_active=True).count() == 1


def test_a_folder_with_an_invalid_card_is_skipped(tmp_path):
    write_card_only(tmp_path, "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.keras").write_bytes(b"x")
    (bad / "card.json").write_text(json.dumps({"version": "bad", "classes": ["nv"]}))

    register_model_versions(tmp_path)

    assert list(ModelVersion.objects.values_list("name", flat=True)) == ["good"]


def test_an_empty_model_root_registers_nothing_and_activates_nothing(tmp_path):
    assert register_model_versions(tmp_path) == []
    assert ModelVersion.active() is None


def test_the_register_models_command_reports_the_active_version(tmp_path, capsys):
    write_card_only(tmp_path, "v1")
    call_command("register_models", model_root=str(tmp_path))
    assert "Active model version: v1" in capsys.readouterr().out


def test_the_system_check_reports_a_missing_model_file(settings, tmp_path):
    folder = write_card_only(tmp_path, "v1")
    (folder / "model.keras").unlink()
    settings.MODEL_ROOT = tmp_path

    assert [problem.id for problem in check_model_root()] == ["classifier.E001"]


def test_the_system_check_reports_an_unusable_card(settings, tmp_path):
    folder = write_card_only(tmp_path, "v1")
    (folder / "card.json").write_text("{not json")
    settings.MODEL_ROOT = tmp_path

    [problem] = check_model_root()
    assert problem.id == "classifier.E002" and "not readable JSON" in problem.msg


def test_the_system_check_warns_when_there_is_no_model(settings, tmp_path):
    settings.MODEL_ROOT = tmp_path / "missing"
    assert [p.id for p in check_model_root()] == ["classifier.W001"]
    settings.MODEL_ROOT = tmp_path
    assert [p.id for p in check_model_root()] == ["classifier.W002"]


def test_the_system_check_reports_an_unset_broker(settings):
    settings.CELERY_BROKER_URL = ""
    assert [p.id for p in check_broker()] == ["classifier.E003"]


def test_versions_trained_on_the_site_are_registered_from_the_trained_model_root(tmp_path, settings):
    shipped, trained = tmp_path / "models", tmp_path / "var-models"
    write_card_only(shipped, "v3", created="2026-01-01T00:00:00Z")
    write_card_only(trained, "retrain-1", created="2026-03-01T00:00:00Z")
    settings.MODEL_ROOT, settings.TRAINED_MODEL_ROOT = shipped, trained

    created = register_model_versions()

    assert {(v.name, v.root) for v in created} == {("v3", "models"), ("retrain-1", "trained")}
    retrained = ModelVersion.objects.get(name="retrain-1")
    assert retrained.model_path == trained / "retrain-1" / "model.keras"
    assert ModelVersion.objects.get(name="v3").model_path == shipped / "v3" / "model.keras"


def test_a_version_moved_out_of_the_checkout_is_still_found_and_recorded_where_it_now_is(tmp_path, settings):
    shipped, trained = tmp_path / "models", tmp_path / "var-models"
    write_card_only(shipped, "retrain-1")
    settings.MODEL_ROOT, settings.TRAINED_MODEL_ROOT = shipped, trained
    register_model_versions()  # registered before site-trained versions had their own folder
    trained.mkdir()
    (shipped / "retrain-1").rename(trained / "retrain-1")

    version = ModelVersion.objects.get(name="retrain-1")
    assert version.root == "models" and version.model_path == trained / "retrain-1" / "model.keras"

    register_model_versions()
    version.refresh_from_db()
    assert version.root == "trained"


def test_the_first_activation_is_recorded_as_the_registrys(tmp_path):
    write_card_only(tmp_path, "v1")

    register_model_versions(tmp_path)

    activation = ModelVersion.objects.get(name="v1").activations.get()
    assert (activation.via, activation.activated_by, activation.overrode_gate) == ("registry", None, False)


def test_the_system_check_reports_a_broken_folder_in_the_trained_model_root(settings, tmp_path):
    write_card_only(tmp_path / "models", "v1")
    broken = write_card_only(tmp_path / "trained", "retrain-1")
    (broken / "model.keras").unlink()
    (tmp_path / "trained" / ".partial-retrain-2").mkdir()  # a job still writing: not a version yet
    settings.MODEL_ROOT, settings.TRAINED_MODEL_ROOT = tmp_path / "models", tmp_path / "trained"

    [problem] = check_model_root()
    assert problem.id == "classifier.E001" and "retrain-1" in problem.msg


def test_a_missing_trained_model_root_is_not_a_problem(settings, tmp_path):
    write_card_only(tmp_path, "v1")
    settings.MODEL_ROOT, settings.TRAINED_MODEL_ROOT = tmp_path, tmp_path / "not-yet-created"
    assert check_model_root() == []
