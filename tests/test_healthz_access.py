"""/healthz tells anyone whether the site is up, but its parts only to holders of the model versions' view
permission (being staff is not enough) and internal addresses,
and an anonymous caller's answers come from a short cache instead of a fresh Celery broadcast each."""

from __future__ import annotations

import ipaddress

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from classifier import health
from lesionsite.env import envnetworks
from tests.signing_in import verified_login

pytestmark = pytest.mark.django_db

HEALTHY = {
    "database": {"ok": True},
    "broker": {"ok": True},
    "inference_workers": {"ok": True, "count": 1, "workers": ["celery@worker-host-7"]},
    "model": {"ok": True, "active_version": "tiny-v1"},
    "status": "ok",
}


@pytest.fixture
def reports(monkeypatch):
    """Counts the full checks made, and answers each with the report in reports.next."""

    class Reports:
        made = 0
        next = HEALTHY

    def full_report():
        Reports.made += 1
        return Reports.next

    monkeypatch.setattr(health, "full_report", full_report)
    return Reports


def test_an_anonymous_caller_gets_no_host_names_or_model(client, reports):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_an_anonymous_caller_learns_only_that_it_is_down(client, reports):
    reports.next = {**HEALTHY, "model": {"ok": False, "error": "no active model version"}, "status": "unavailable"}
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_repeated_anonymous_calls_reuse_one_check_until_it_expires(client, reports):
    for _ in range(20):
        assert client.get("/healthz").status_code == 200
    assert reports.made == 1

    cache.delete(health.CACHE_KEY)  # as after HEALTHZ_CACHE_SECONDS
    client.get("/healthz")
    assert reports.made == 2


def test_a_cache_of_zero_seconds_checks_every_time(client, reports, settings):
    settings.HEALTHZ_CACHE_SECONDS = 0
    client.get("/healthz")
    client.get("/healthz")
    assert reports.made == 2


def test_holders_of_the_model_versions_permission_see_every_part_checked_afresh(client, reports, django_user_model):
    from django.contrib.auth.models import Permission

    ops = django_user_model.objects.create_user("ops", password="x")
    ops.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    client.force_login(ops)
    client.get("/healthz")
    response = client.get("/healthz")
    assert response.json() == HEALTHY
    assert reports.made == 2


def test_staff_without_the_permission_are_treated_as_anonymous(client, reports, django_user_model):
    verified_login(client, django_user_model.objects.create_user("stella", password="x", is_staff=True))
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_clinician_is_treated_as_anonymous(owner_web, reports):
    assert owner_web.get("/healthz").json() == {"status": "ok"}


def test_callers_from_a_configured_network_see_the_parts(client, reports, settings):
    settings.HEALTHZ_DETAIL_FROM = [ipaddress.ip_network("10.0.0.0/8")]
    assert client.get("/healthz", REMOTE_ADDR="10.1.2.3").json() == HEALTHY
    assert client.get("/healthz", REMOTE_ADDR="192.0.2.7").json() == {"status": "ok"}


def test_a_forged_forwarded_for_is_ignored_unless_a_proxy_is_trusted(client, reports, settings):
    settings.HEALTHZ_DETAIL_FROM = [ipaddress.ip_network("10.0.0.0/8")]
    forged = {"REMOTE_ADDR": "192.0.2.7", "HTTP_X_FORWARDED_FOR": "10.1.2.3"}
    assert client.get("/healthz", **forged).json() == {"status": "ok"}


def test_the_networks_setting_reads_addresses_and_ranges_and_names_a_bad_one(monkeypatch):
    monkeypatch.setenv("HEALTHZ_DETAIL_FROM", "10.0.0.0/8, 192.0.2.1, ::1")
    assert [str(n) for n in envnetworks("HEALTHZ_DETAIL_FROM", [])] == ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]
    monkeypatch.setenv("HEALTHZ_DETAIL_FROM", "10.0.0.0/8, intranet")
    with pytest.raises(ImproperlyConfigured, match="HEALTHZ_DETAIL_FROM: 'intranet'"):
        envnetworks("HEALTHZ_DETAIL_FROM", [])
