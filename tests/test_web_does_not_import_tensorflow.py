"""The web process validates with Pillow and only enqueues: TensorFlow must never load there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

# Runs in a fresh interpreter, since this test process itself imports TensorFlow
# for other tests. It serves real requests through every layer a web request
# touches: URL resolution, every view module, an upload that enqueues a task.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import get_resolver
    from tests.images import upload

    get_resolver().url_patterns  # imports every view module
    import lesionsite.wsgi, classifier.admin, worker.tasks  # noqa
    from classifier.models import Clinic
    user = get_user_model().objects.create_user("web", password="web-password-1")
    Clinic.objects.create(name="Web clinic").add_member(user, "manager")
    from tests.signing_in import verified_login
    client = verified_login(Client(), user)  # a manager: signed in with the second factor
    pages = [client.get(url).status_code for url in ("/upload/", "/history/", "/api/v1/images/", "/api/schema/",
                                                         "/api/v1/patients/", "/clinic/members/", "/clinic/audit/")]
    response = client.post("/api/v1/images/", {"file": upload("a.png")})
    print(json.dumps({
        "upload": response.status_code,
        "pages": pages,
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")),
    }))
    """
)


def test_serving_pages_and_uploads_never_imports_tensorflow(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lesionsite.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "CELERY_BROKER_URL": "memory://",  # a real publish, to a broker that needs no server
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "0",  # the test client speaks plain http
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["upload"] == 201
    assert report["pages"] == [200] * 7
    assert report["loaded"] == []
