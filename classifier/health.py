"""/healthz: is every dependency of a prediction up? For operators and load balancers.

Anyone gets the verdict; what each part said (worker host names, the active model, error
text) goes only to holders of classifier.view_modelversion (being staff is not enough) and to
HEALTHZ_DETAIL_FROM addresses. Anonymous answers come from a
short cache, so they cannot be used to make the workers answer broadcasts at will.
"""

from __future__ import annotations

import ipaddress
import logging

from celery import current_app as app
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from classifier.audit import client_address
from classifier.model_store import is_stored
from classifier.models import ModelVersion
from classifier.object_storage import STORAGE_ERRORS
from classifier.permissions import HEALTH_DETAIL_PERMISSION

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 2.0  # seconds: a health check must answer fast even when Redis is gone
PING_TIMEOUT = 1.0


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}


def check_broker() -> dict:
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}


def check_inference_workers() -> dict:
    """Workers that answer a ping and consume the `inference` queue."""
    try:
        queues = app.control.inspect(timeout=PING_TIMEOUT).active_queues() or {}
    except Exception as exc:
        return {"ok": False, "count": 0, "error": f"{exc.__class__.__name__}: {exc}"}
    names = sorted(name for name, consumed in queues.items() if any(q["name"] == "inference" for q in consumed))
    return {"ok": bool(names), "count": len(names), "workers": names}


def check_model() -> dict:
    try:
        version = ModelVersion.active()
    except Exception as exc:
        return {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
    if version is None:
        return {"ok": False, "active_version": None, "error": "no active model version"}
    if version.model_path.is_file():
        return {"ok": True, "active_version": version.name}
    # Trained on another host: the workers fetch it from the object store (worker.model_fetch).
    try:
        return {"ok": is_stored(version.directory), "active_version": version.name}
    except STORAGE_ERRORS as exc:
        return {"ok": False, "active_version": version.name, "error": f"object store: {exc.__class__.__name__}"}


CACHE_KEY = "healthz:healthy"


def full_report() -> dict:
    report = {"database": check_database(), "broker": check_broker()}
    report["inference_workers"] = (
        check_inference_workers() if report["broker"]["ok"] else {"ok": False, "count": 0, "error": "broker down"}
    )
    report["model"] = check_model() if report["database"]["ok"] else {"ok": False, "error": "database down"}
    report["status"] = "ok" if all(part["ok"] for part in report.values()) else "unavailable"
    return report


def may_see_details(request) -> bool:
    if request.user.is_authenticated and request.user.has_perm(HEALTH_DETAIL_PERMISSION):
        return True
    address = client_address(request)
    return address is not None and any(ipaddress.ip_address(address) in net for net in settings.HEALTHZ_DETAIL_FROM)


def remember(healthy: bool) -> None:
    try:
        cache.set(CACHE_KEY, healthy, settings.HEALTHZ_CACHE_SECONDS)
    except Exception:  # the cache is Redis in production: a health check must still answer without it
        logger.warning("healthz: could not cache the verdict", exc_info=True)


def remembered() -> bool | None:
    try:
        return cache.get(CACHE_KEY)
    except Exception:
        logger.warning("healthz: could not read the cached verdict", exc_info=True)
        return None


@never_cache
@require_GET
def healthz(request):
    if may_see_details(request):
        report = full_report()
        remember(report["status"] == "ok")
        return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
    healthy = remembered()
    if healthy is None:
        healthy = full_report()["status"] == "ok"
        remember(healthy)
    return JsonResponse({"status": "ok" if healthy else "unavailable"}, status=200 if healthy else 503)
