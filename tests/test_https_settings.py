"""HTTPS hardening comes from the environment: on unless DEBUG, each part switchable, `check --deploy` clean."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

HARDENING = (
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
)


def production_like(tmp_path, **extra: str) -> dict:
    """This process's environment without any hardening variable, plus what a deployment sets."""
    environment = {
        key: value
        for key, value in os.environ.items()
        # DJANGO_ALLOW_ASYNC_UNSAFE: set by the browser tests' fixtures for this process, never in production.
        if key not in (*HARDENING, "DEBUG", "TRUST_X_FORWARDED_PROTO", "DJANGO_ALLOW_ASYNC_UNSAFE")
        and not key.startswith(("TRAIN", "MODEL_ROOT"))
    }
    return {
        **environment,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "lesions.example.org",
        "LESIONSITE_VAR_DIR": str(tmp_path),
        **extra,
    }


def hardening_settings(environment: dict) -> dict:
    script = "import json, sys, lesionsite.settings as s; print(json.dumps({n: getattr(s, n) for n in sys.argv[1:]}))"
    done = subprocess.run(
        [sys.executable, "-c", script, *HARDENING],
        env=environment,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_check_deploy_finds_no_warning_with_production_like_settings(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=production_like(tmp_path),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_everything_is_on_without_debug(tmp_path):
    values = hardening_settings(production_like(tmp_path))
    assert values["SECURE_SSL_REDIRECT"] and values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and values["SECURE_HSTS_PRELOAD"]
    assert values["SECURE_PROXY_SSL_HEADER"] is None  # trusted only when told a proxy sets it


def test_everything_is_off_with_debug_so_make_run_works_on_plain_http(tmp_path):
    values = hardening_settings(production_like(tmp_path, DEBUG="1"))
    assert not (values["SECURE_SSL_REDIRECT"] or values["SESSION_COOKIE_SECURE"] or values["CSRF_COOKIE_SECURE"])
    assert values["SECURE_HSTS_SECONDS"] == 0


def test_each_part_can_be_set_on_its_own(tmp_path):
    values = hardening_settings(
        production_like(tmp_path, SECURE_SSL_REDIRECT="0", SECURE_HSTS_SECONDS="3600", TRUST_X_FORWARDED_PROTO="1")
    )
    assert values["SECURE_SSL_REDIRECT"] is False and values["SESSION_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 3600
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_a_typo_stops_start_up_with_the_variables_name(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as refused:
        hardening_settings(production_like(tmp_path, SESSION_COOKIE_SECURE="ture"))
    assert "SESSION_COOKIE_SECURE" in refused.value.stderr


@pytest.mark.django_db
def test_plain_http_is_redirected_and_https_from_the_proxy_gets_hsts(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    redirected = client.get("/login/")
    assert redirected.status_code == 301 and redirected["Location"] == "https://testserver/login/"

    served = client.get("/login/", headers={"X-Forwarded-Proto": "https"})
    assert served.status_code == 200
    assert served["Strict-Transport-Security"].startswith("max-age=3600")
