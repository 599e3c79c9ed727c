"""How stored predictions are split into inference tasks (classifier.uploads)."""

from __future__ import annotations

import pytest

from classifier.uploads import enqueue_predictions, model_batches


@pytest.mark.parametrize(
    ("count", "size", "sizes"),
    [
        (0, 32, []),
        (1, 32, [1]),
        (32, 32, [32]),
        (33, 32, [17, 16]),
        (100, 32, [25, 25, 25, 25]),
        (500, 32, [32] * 4 + [31] * 12),
        (7, 3, [3, 2, 2]),
        (5, 1, [1] * 5),
    ],
)
def test_the_fewest_batches_as_even_as_they_can_be(count, size, sizes):
    ids = list(range(1000, 1000 + count))
    batches = model_batches(ids, size)
    assert [len(batch) for batch in batches] == sizes
    assert [pid for batch in batches for pid in batch] == ids  # every id once, in order


def test_each_batch_goes_to_the_queue_as_one_task(monkeypatch, settings):
    settings.INFERENCE_BATCH_SIZE = 4
    sent = []
    monkeypatch.setattr("worker.tasks.predict.apply_async", lambda args: sent.append(args[0]))
    enqueue_predictions(list(range(10)))
    assert sent == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
