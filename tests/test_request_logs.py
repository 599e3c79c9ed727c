"""Request lines are logged without their query strings: a search (/history/?q=Jane) is patient data.

Both servers that log requests are run for real: Django's dev server (`make run`'s runserver) through
the LOGGING the settings configure, and gunicorn with the repository's gunicorn.conf.py."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

from bench.stack import free_port
from lesionsite.logformat import JsonFormatter, StripQueryStrings
from tests.conftest import REPO_ROOT, wait_for


def fetch(url: str) -> int:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        return opener.open(url, timeout=20).status
    except urllib.error.HTTPError as answer:
        return answer.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def dev_server_log():
    """A dev server on a free port, its request lines written by the configured django.server handler."""
    server = WSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(WSGIHandler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handlers = logging.getLogger("django.server").handlers  # pytest adds its own capture beside it
    handler = next(h for h in handlers if any(isinstance(f, StripQueryStrings) for f in h.filters))
    written = io.StringIO()
    previous = handler.setStream(written)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", written
    finally:
        handler.setStream(previous)
        server.shutdown()
        server.server_close()


def test_the_dev_server_logs_a_search_by_its_path_alone(dev_server_log, db):
    url, written = dev_server_log

    assert fetch(f"{url}/history/?q=Jane&patient=MRN-1") == 302  # to the login page: logged all the same

    # The server thread writes its line once the answer is sent: it may come a moment after.
    line = wait_for(lambda: next((line for line in written.getvalue().splitlines() if "/history/" in line), None), 10)
    assert '"GET /history/ HTTP/1.1" 302' in line
    assert "Jane" not in line and "MRN-1" not in line and "?" not in line


def test_a_json_line_of_a_request_has_no_query_string_either():
    record = logging.LogRecord("django.server", logging.INFO, __file__, 1, '"%s" %s %s',
                               ("GET /history/?q=Jane HTTP/1.1", "200", "512"), None)  # fmt: skip

    StripQueryStrings().filter(record)

    assert JsonFormatter().format(record).count("Jane") == 0
    assert record.getMessage() == '"GET /history/ HTTP/1.1" 200 512'


def test_a_message_that_is_not_a_request_line_is_left_alone():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", ("Why?", "GET /a HTTP/1.1"), None)

    StripQueryStrings().filter(record)

    assert record.getMessage() == "Why? GET /a HTTP/1.1"


def test_gunicorns_access_log_names_the_path_without_the_query(tmp_path):
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lesionsite.settings", "DEBUG": "1",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}  # fmt: skip
    command = [sys.executable, "-m", "gunicorn", "lesionsite.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
               "--access-logfile", "-"]  # fmt: skip
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status = fetch(f"http://127.0.0.1:{port}/history/?q=Jane")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.3)
        assert status == 302
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode(errors="replace")

    line = next(line for line in output.splitlines() if "/history/" in line)
    assert '"GET /history/ HTTP/1.1" 302' in line
    assert "Jane" not in output
