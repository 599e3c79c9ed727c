"""JSON log lines (LOG_FORMAT=json): one object per line, with the ids a line is about.

Code passes ids as logging's ``extra`` (``extra={"prediction_id": 7}``), so an
operator can follow one prediction through web and worker logs with a filter.
"""

from __future__ import annotations

import json
import logging

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
