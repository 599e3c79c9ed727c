"""/healthz: is every dependency of a prediction up? For operators and load balancers."""

from __future__ import annotations

from celery import current_app as app
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from classifier.models import ModelVersion

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
    return {"ok": version.model_path.is_file(), "active_version": version.name}


@never_cache
@require_GET
def healthz(request):
    report = {"database": check_database(), "broker": check_broker()}
    report["inference_workers"] = (
        check_inference_workers() if report["broker"]["ok"] else {"ok": False, "count": 0, "error": "broker down"}
    )
    report["model"] = check_model() if report["database"]["ok"] else {"ok": False, "error": "database down"}
    healthy = all(part["ok"] for part in report.values())
    report["status"] = "ok" if healthy else "unavailable"
    return JsonResponse(report, status=200 if healthy else 503)
