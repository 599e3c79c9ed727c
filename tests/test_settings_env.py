from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from lesionsite.env import envbool, envfloats, envint, envlist, envrate
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("off", False)]
)
def test_envbool_reads_common_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("FLAG", raw)
    assert envbool("FLAG", not expected) is expected


def test_envbool_rejects_a_typo_with_the_variables_name(monkeypatch):
    monkeypatch.setenv("DEBUG", "ture")
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        envbool("DEBUG", False)


def test_envint_rejects_words_and_values_under_the_minimum(monkeypatch):
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "20MB")
    with pytest.raises(ImproperlyConfigured, match="UPLOAD_MAX_BYTES"):
        envint("UPLOAD_MAX_BYTES", 1)
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        envint("UPLOAD_MAX_BYTES", 1, minimum=1)


def test_defaults_apply_when_unset(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    assert envint("NOT_SET_ANYWHERE", 7) == 7
    assert envlist("NOT_SET_ANYWHERE", ["a"]) == ["a"]


def test_envlist_splits_on_commas(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", "example.org, lesions.example.org,")
    assert envlist("ALLOWED_HOSTS", []) == ["example.org", "lesions.example.org"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("300/minute", "300/minute"),
        ("10/s", "10/s"),
        ("100/minutes", "100/minute"),
        (" 5 / Hour ", "5/hour"),
        ("", ""),
        ("0", ""),
        ("off", ""),
    ],
)
def test_envrate_reads_rates_and_the_ways_of_saying_no_limit(monkeypatch, raw, expected):
    monkeypatch.setenv("UPLOAD_RATE_LIMIT", raw)
    assert envrate("UPLOAD_RATE_LIMIT", "300/minute") == expected


@pytest.mark.parametrize("raw", ["300", "300 per minute", "fast", "3.5/s", "10/week"])
def test_envrate_rejects_what_the_throttle_could_not_parse(monkeypatch, raw):
    monkeypatch.setenv("UPLOAD_RATE_LIMIT", raw)
    with pytest.raises(ImproperlyConfigured, match="UPLOAD_RATE_LIMIT"):
        envrate("UPLOAD_RATE_LIMIT", "300/minute")


def settings_in_a_fresh_process(env: dict, *names: str) -> subprocess.CompletedProcess:
    """Import lesionsite.settings with these environment variables; print the named settings."""
    script = (
        "import json, sys, lesionsite.settings as s; print(json.dumps({n: str(getattr(s, n)) for n in sys.argv[1:]}))"
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("TRAIN", "MODEL_ROOT"))}
    return subprocess.run(
        [sys.executable, "-c", script, *names],
        env={**environment, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )


def test_site_trained_versions_go_under_the_var_folder_by_default_and_where_told(tmp_path):
    names = ("TRAINED_MODEL_ROOT", "MODEL_ROOT")
    default = settings_in_a_fresh_process({"LESIONSITE_VAR_DIR": str(tmp_path)}, *names)
    told = settings_in_a_fresh_process({"LESIONSITE_VAR_DIR": str(tmp_path), "TRAINED_MODEL_ROOT": "/data/m"}, *names)

    assert json.loads(default.stdout)["TRAINED_MODEL_ROOT"] == str(tmp_path / "models")
    assert json.loads(default.stdout)["MODEL_ROOT"] == str(REPO_ROOT / "models")
    assert json.loads(told.stdout)["TRAINED_MODEL_ROOT"] == "/data/m"


def test_the_held_out_minimum_per_class_is_read_from_the_environment_and_must_be_at_least_one(tmp_path):
    name = "TRAINING_GATE_MIN_HELD_OUT_PER_CLASS"
    var = {"LESIONSITE_VAR_DIR": str(tmp_path)}
    assert json.loads(settings_in_a_fresh_process(var, name).stdout)[name] == "10"
    assert json.loads(settings_in_a_fresh_process({**var, name: "25"}, name).stdout)[name] == "25"
    refused = settings_in_a_fresh_process({**var, name: "0"}, name)
    assert refused.returncode != 0 and f"{name}=0 must be at least 1" in refused.stderr


def test_envfloats_reads_a_list_of_numbers_and_names_a_bad_one(monkeypatch):
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "0.5, 10,60")
    assert envfloats("WEBHOOK_RETRY_DELAYS", [1.0]) == [0.5, 10.0, 60.0]
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "10,1m")
    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_RETRY_DELAYS: '1m' is not a number"):
        envfloats("WEBHOOK_RETRY_DELAYS", [1.0])
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", "10,-1")
    with pytest.raises(ImproperlyConfigured, match="must be at least 0"):
        envfloats("WEBHOOK_RETRY_DELAYS", [1.0])
    monkeypatch.setenv("WEBHOOK_RETRY_DELAYS", " , ")
    with pytest.raises(ImproperlyConfigured, match="at least one number"):
        envfloats("WEBHOOK_RETRY_DELAYS", [1.0])


def test_webhooks_go_to_public_addresses_only_unless_the_site_allows_private_ones(tmp_path):
    var = {"LESIONSITE_VAR_DIR": str(tmp_path)}
    names = ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "WEBHOOK_RETRY_DELAYS")
    default = json.loads(settings_in_a_fresh_process(var, *names).stdout)
    allowed = json.loads(settings_in_a_fresh_process({**var, "WEBHOOK_ALLOW_PRIVATE_TARGETS": "1"}, *names).stdout)

    assert default == {
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "False",
        "WEBHOOK_RETRY_DELAYS": "[10.0, 60.0, 300.0, 1800.0, 7200.0]",
    }
    assert allowed["WEBHOOK_ALLOW_PRIVATE_TARGETS"] == "True"


def test_an_abandoned_task_is_looked_for_every_tenth_of_the_visibility_timeout(tmp_path):
    var, name = {"LESIONSITE_VAR_DIR": str(tmp_path), "BROKER_KEY_PREFIX": ""}, "CELERY_BROKER_TRANSPORT_OPTIONS"
    default = ast.literal_eval(json.loads(settings_in_a_fresh_process(var, name).stdout)[name])
    short = ast.literal_eval(
        json.loads(settings_in_a_fresh_process({**var, "BROKER_VISIBILITY_TIMEOUT": "8"}, name).stdout)[name]
    )

    assert default == {"visibility_timeout": 300, "unacked_restore_interval": 30, "unacked_restore_throttle": 1}
    assert short["visibility_timeout"] == 8 and short["unacked_restore_interval"] == 1
