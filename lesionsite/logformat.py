"""JSON log lines (LOG_FORMAT=json): one object per line, with the ids a line is about; and request
lines without their query strings.

Code passes ids as logging's ``extra`` (``extra={"prediction_id": 7}``), so an
operator can follow one prediction through web and worker logs with a filter.
"""

from __future__ import annotations

import json
import logging
import re

CONTEXT_FIELDS = ("prediction_id", "prediction_ids", "task_id", "job_id", "model_version", "image_id", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({name: getattr(record, name) for name in CONTEXT_FIELDS if hasattr(record, name)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# "GET /history/?q=Jane HTTP/1.1" -> "GET /history/ HTTP/1.1"; a bare path or URL loses its query too.
_REQUEST_LINE = re.compile(
    r"^(?P<method>[A-Z]+ )?(?P<path>(?:https?://[^\s/?]+)?/[^\s?]*)\?\S*(?P<version> HTTP/[\d.]+)?$"
)


def without_query(text: str) -> str:
    match = _REQUEST_LINE.match(text)
    if match is None:
        return text
    return f"{match['method'] or ''}{match['path']}{match['version'] or ''}"


class StripQueryStrings(logging.Filter):
    """Drops the query string from the request lines of the dev server (django.server) and of gunicorn's
    access log: a search (``/history/?q=...``) is patient data, and logs are kept and read by others."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):  # gunicorn.access: its atoms, by name
            atoms = dict(record.args)
            if "q" in atoms:
                atoms["q"] = ""
            for key in ("r", "f"):  # the request line, the referrer
                if isinstance(atoms.get(key), str):
                    atoms[key] = without_query(atoms[key])
            record.args = atoms
        elif isinstance(record.args, tuple):
            record.args = tuple(without_query(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True
