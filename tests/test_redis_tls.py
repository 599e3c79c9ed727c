"""A rediss:// broker URL gets its server's certificate checked, unless the URL itself says how."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys

from tests.conftest import REPO_ROOT

SCRIPT = (
    "import json, django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'lesionsite.settings'); django.setup();"
    "from lesionsite.celery import app; ssl = app.connection_for_write().ssl;"
    "print(json.dumps(ssl if isinstance(ssl, dict) else {'ssl': ssl}, default=int))"
)


def broker_ssl(url: str, tmp_path) -> dict:
    env = {**os.environ, "CELERY_BROKER_URL": url, "LESIONSITE_VAR_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_rediss_url_checks_the_certificate(tmp_path):
    assert broker_ssl("rediss://:secret@redis.example.org:6380/0", tmp_path) == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_the_urls_own_choice_is_kept_and_plain_redis_has_no_tls(tmp_path):
    given = broker_ssl("rediss://:secret@redis.example.org:6380/0?ssl_cert_reqs=required", tmp_path)
    assert given.get("ssl_cert_reqs") == ssl.CERT_REQUIRED
    assert broker_ssl("redis://:secret@127.0.0.1:6379/0", tmp_path) == {"ssl": False}
