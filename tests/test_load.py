"""The load test in a small configuration: concurrent uploads over HTTP to a real worker, none lost.

The full run (200 uploads from 20 clients against gunicorn, PostgreSQL and two
workers) is `python -m bench.load_test --start-stack`; see docs/PERFORMANCE.md.
"""

from __future__ import annotations

import pytest

from bench.load_test import run_load_test
from classifier.models import Prediction
from classifier.tokens import ApiToken

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_concurrent_uploads_all_get_a_prediction_and_no_server_error(
    live_server, celery_worker, active_tiny_model, owner
):
    _, token = ApiToken.objects.issue(owner, name="load test")

    result = run_load_test(live_server.url, token, uploads=20, clients=4, timeout=120)

    assert result.server_errors == 0 and not result.transport_errors, result.summary()
    assert result.status_codes == {"201": 20}
    assert result.done == 20 and result.failed == 0 and result.lost == 0, celery_worker.log()
    assert result.ok
    assert Prediction.objects.filter(image__owner=owner, status="done").count() == 20
