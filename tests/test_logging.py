from __future__ import annotations

import json
import logging

from lesionsite.logformat import JsonFormatter


def test_a_json_log_line_carries_the_prediction_id():
    record = logging.LogRecord("worker.inference", logging.INFO, __file__, 1, "prediction %s: done", (7,), None)
    record.prediction_id = 7
    record.task_id = "abc"

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "prediction 7: done"
    assert (line["prediction_id"], line["task_id"], line["level"]) == (7, "abc", "INFO")


def test_every_worker_log_line_about_a_prediction_names_it(owner, active_tiny_model, caplog, db):
    from tests.factories import make_prediction
    from worker.inference import run_predictions

    prediction = make_prediction(owner)
    with caplog.at_level(logging.INFO, logger="worker.inference"):
        run_predictions([prediction.pk], task_id="t-1")

    about = [r for r in caplog.records if r.name == "worker.inference"]
    assert about
    for record in about:
        ids = getattr(record, "prediction_ids", None) or [getattr(record, "prediction_id", None)]
        assert prediction.pk in ids, record.getMessage()
