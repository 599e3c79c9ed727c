from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from lesionsite.env import envbool, envint, envlist, envrate


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
